package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Stream sends a GET request and copies a successful reply's body to w as
// it arrives, without holding it in memory (a detailed report may be
// gigabytes). The whole transfer is bounded by ctx only, not by the
// client's timeout. An error reply is returned as *Error.
func (c *Client) Stream(ctx context.Context, path string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, "GET", c.BaseURL+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	hc := *c.HTTP
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the hve admin API at %s (is hve serve running? see --server): %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e struct {
			Error struct{ Code, Message string }
		}
		if json.Unmarshal(data, &e) == nil && e.Error.Message != "" {
			return &Error{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
		}
		return &Error{Status: resp.StatusCode, Code: "http", Message: strings.TrimSpace(string(data))}
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("receiving %s: %w", path, err)
	}
	return nil
}
