package main

import (
	"flag"
	"fmt"
	"net/url"
	"strings"

	"github.com/heraldhq/herald"
)

// hookConfig holds the --hook-* flags: the URLs of the application
// backend's HTTP hooks (docs/OPERATIONS.md, Hooks).
type hookConfig struct {
	opts    herald.HookOptions
	headers string
	cookies string
}

func (h *hookConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&h.opts.Connect, "hook-connect", "", "URL the backend is asked at each upgrade: who the connection is (user, expiry, server-side channels), or a refusal; replaces tokens at the upgrade")
	fs.StringVar(&h.opts.Subscribe, "hook-subscribe", "", "URL the backend is asked for each subscribe a token's channels claim does not already allow")
	fs.StringVar(&h.opts.Publish, "hook-publish", "", "URL the backend is asked for each WebSocket publish (not the HTTP API); it may refuse or replace the data")
	fs.StringVar(&h.opts.RPC, "hook-rpc", "", "URL that answers the clients' rpc requests (without it rpc is refused)")
	fs.StringVar(&h.opts.Refresh, "hook-refresh", "", "URL the backend is asked for a new expiry when a connection made through --hook-connect expires (without it: closed with 4001)")
	fs.StringVar(&h.opts.Secret, "hook-secret", "", "signs every hook request: X-Herald-Signature: sha256=<hex HMAC-SHA256 of the body>; pass it as HERALD_HOOK_SECRET")
	fs.DurationVar(&h.opts.Timeout, "hook-timeout", herald.DefaultHookTimeout, "time allowed for each hook request, its wait for a free slot included; past it the client gets unavailable (the upgrade 503)")
	fs.IntVar(&h.opts.Concurrency, "hook-concurrency", herald.DefaultHookConcurrency, "hook requests in flight per hook URL; more wait, within --hook-timeout")
	fs.StringVar(&h.headers, "hook-headers", "", "comma-separated request headers of the upgrade passed to --hook-connect (none by default)")
	fs.StringVar(&h.cookies, "hook-cookies", "", "comma-separated cookie names of the upgrade passed to --hook-connect (none by default)")
}

// apply checks the hook URLs, adds the per-namespace hooks of the config
// file's namespaces section and sets o.Hooks when any hook is set.
func (h *hookConfig) apply(config string, o *herald.Options) error {
	h.opts.Headers, h.opts.Cookies = splitList(h.headers), splitList(h.cookies)
	var ns map[string]namespaceConfig
	if err := readConfigSection(config, "namespaces", &ns); err != nil {
		return err
	}
	set := false
	for name, n := range ns {
		nh := herald.NamespaceHooks{Subscribe: n.HookSubscribe, Publish: n.HookPublish, RPC: n.HookRPC}
		if nh == (herald.NamespaceHooks{}) {
			continue
		}
		for _, u := range []string{nh.Subscribe, nh.Publish, nh.RPC} {
			if err := checkHookURL("namespace "+name, u); err != nil {
				return err
			}
		}
		if h.opts.Namespaces == nil {
			h.opts.Namespaces = map[string]herald.NamespaceHooks{}
		}
		h.opts.Namespaces[name] = nh
		set = true
	}
	for flagName, u := range map[string]string{"hook-connect": h.opts.Connect, "hook-subscribe": h.opts.Subscribe,
		"hook-publish": h.opts.Publish, "hook-rpc": h.opts.RPC, "hook-refresh": h.opts.Refresh} {
		if err := checkHookURL("--"+flagName, u); err != nil {
			return err
		}
		set = set || u != ""
	}
	if set {
		o.Hooks = &h.opts
	}
	return nil
}

func checkHookURL(where, u string) error {
	if u == "" {
		return nil
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return usageError{fmt.Errorf("%s: hook URL %q is not an http:// or https:// URL", where, u)}
	}
	return nil
}

func splitList(s string) []string {
	var list []string
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			list = append(list, v)
		}
	}
	return list
}
