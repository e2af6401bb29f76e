package client

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// The admin API pages its lists: the reply is the JSON array of one page,
// and an RFC 8288 header Link: <URL>; rel="next" leads to the next page
// (absent on the last). NextLink and AllPages fetch such a list whole;
// the web admin center, which calls the API in process, uses them too.

// NextLink returns the target of the rel="next" link of a reply's Link
// headers, as it stands (a URI reference, to resolve against the
// request's URL), or "" when there is none.
func NextLink(h http.Header) string {
	for _, v := range h.Values("Link") {
		for {
			v = strings.TrimLeft(v, " \t,")
			if !strings.HasPrefix(v, "<") {
				break
			}
			end := strings.IndexByte(v, '>')
			if end < 0 {
				break
			}
			target := v[1:end]
			var params string
			params, v = cutLink(v[end+1:])
			for _, p := range strings.Split(params, ";") {
				name, val, ok := strings.Cut(p, "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(name), "rel") {
					continue
				}
				// rel may hold several relation types: rel="next last".
				for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(val), `"`)) {
					if strings.EqualFold(rel, "next") {
						return target
					}
				}
			}
		}
	}
	return ""
}

// cutLink splits the parameters of one link from the links after it, at
// the first comma outside a quoted string.
func cutLink(s string) (params, rest string) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case '\\':
			i++
		case ',':
			if !quoted {
				return s[:i], s[i+1:]
			}
		}
	}
	return s, ""
}

// AllPages returns the items of every page of a list as one JSON array.
// first is the body of the first page and next the target of its
// rel="next" link; fetch gets the page at a target and returns its body
// and the target of its own rel="next" link ("" on the last page).
func AllPages(first []byte, next string, fetch func(target string) (body []byte, next string, err error)) ([]byte, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(first, &items); err != nil {
		return nil, fmt.Errorf("a paged reply is not a JSON array: %w", err)
	}
	seen := map[string]bool{}
	for next != "" {
		if seen[next] {
			return nil, fmt.Errorf("the pages of the list lead back to %s", next)
		}
		seen[next] = true
		body, n, err := fetch(next)
		if err != nil {
			return nil, err
		}
		var page []json.RawMessage
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, fmt.Errorf("the page at %s is not a JSON array: %w", next, err)
		}
		items = append(items, page...)
		next = n
	}
	if items == nil {
		items = []json.RawMessage{}
	}
	return json.MarshalIndent(items, "", "  ")
}
