// Package client is a small Go client of the hve admin API, used by the CLI.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls one hve server's admin API.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// New returns a client for the server at baseURL.
func New(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{Timeout: 60 * time.Second}}
}

// Error is an error reply of the API.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d %s)", e.Message, e.Status, e.Code)
}

// Do sends a request with an optional JSON body and decodes a JSON reply
// into out (if not nil). A raw []byte out receives the body unparsed.
//
// A list that the API pages (a GET whose reply has a Link rel="next"
// header) is fetched whole: Do follows the links to the last page and
// decodes the items of every page as one JSON array.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return err
		}
	}
	target := c.BaseURL + path
	data, header, err := c.send(ctx, method, target, path, b, body != nil)
	if err != nil {
		return err
	}
	if next := NextLink(header); method == http.MethodGet && next != "" {
		data, err = AllPages(data, next, func(link string) ([]byte, string, error) {
			u, err := sameOrigin(target, link)
			if err != nil {
				return nil, "", fmt.Errorf("the next page of %s: %w", path, err)
			}
			target = u
			data, header, err := c.send(ctx, http.MethodGet, u, path, nil, false)
			return data, NextLink(header), err
		})
		if err != nil {
			return err
		}
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*o = data
		return nil
	default:
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding reply of %s %s: %w", method, path, err)
		}
		return nil
	}
}

// send sends one request to target (path names it in errors) and returns
// the body and headers of a successful reply; an error reply is *Error.
func (c *Client) send(ctx context.Context, method, target, path string, body []byte, isJSON bool) ([]byte, http.Header, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	// The audit log tells changes made with the CLI from other API calls.
	req.Header.Set("User-Agent", "hve-cli")
	if isJSON {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot reach the hve admin API at %s (is hve serve running? see --server): %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("reading reply of %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string }
		}
		if json.Unmarshal(data, &e) == nil && e.Error.Message != "" {
			return nil, nil, &Error{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
		}
		return nil, nil, &Error{Status: resp.StatusCode, Code: "http", Message: strings.TrimSpace(string(data))}
	}
	return data, resp.Header, nil
}

// sameOrigin resolves a link of the reply to a request for base, and
// refuses one to another server: the token goes with the request.
func sameOrigin(base, link string) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	u, err := b.Parse(link)
	if err != nil {
		return "", fmt.Errorf("link %q: %w", link, err)
	}
	if u.Scheme != b.Scheme || u.Host != b.Host {
		return "", fmt.Errorf("link %q leads away from %s://%s", link, b.Scheme, b.Host)
	}
	return u.String(), nil
}
