// Package web holds the pages herald serve shows, embedded in the binary.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

//go:embed dashboard
var dashboard embed.FS

// Handler serves the embedded pages: the start page at "/".
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.FileServerFS(sub)
}

// Dashboard serves the live dashboard page; mount it at "/dashboard/" with
// http.StripPrefix. It reads /api/stats with the API key the user enters.
func Dashboard() http.Handler {
	sub, err := fs.Sub(dashboard, "dashboard")
	if err != nil {
		panic(err)
	}
	return http.FileServerFS(sub)
}
