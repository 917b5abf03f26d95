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
// http.StripPrefix. It reads /api/stats with the API key the user enters,
// so it refuses to be framed by another page (X-Frame-Options and the CSP
// frame-ancestors directive), which could trick the user into typing it.
func Dashboard() http.Handler {
	sub, err := fs.Sub(dashboard, "dashboard")
	if err != nil {
		panic(err)
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
		files.ServeHTTP(w, r)
	})
}
