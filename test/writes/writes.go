// Package writes counts the requests a client makes that are not reads, so
// tests can tell whether a steady cluster sees any writes from the
// operator.
package writes

import (
	"net/http"
	"strings"
	"sync"
)

// Log counts writes, in all and by the namespace they touch.
type Log struct {
	mu    sync.Mutex
	total int
	byNS  map[string]int
	// recent are the last writes, "METHOD path", for failure messages.
	recent []string
}

// keepRecent bounds how many writes Recent returns.
const keepRecent = 20

// Wrap counts every request through rt that is not a read. It fits
// rest.Config.WrapTransport.
func (l *Log) Wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		switch req.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			l.mu.Lock()
			if l.byNS == nil {
				l.byNS = map[string]int{}
			}
			l.total++
			l.byNS[namespaceOf(req.URL.Path)]++
			l.recent = append(l.recent, req.Method+" "+req.URL.Path)
			if len(l.recent) > keepRecent {
				l.recent = l.recent[1:]
			}
			l.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

// Total is how many writes were counted.
func (l *Log) Total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// Recent returns the last writes counted, oldest first.
func (l *Log) Recent() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.recent...)
}

// In is how many writes touched namespace ns; "" counts cluster-scoped ones.
func (l *Log) In(ns string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byNS[ns]
}

func namespaceOf(path string) string {
	parts := strings.Split(path, "/")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "namespaces" {
			return parts[i+1]
		}
	}
	return ""
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
