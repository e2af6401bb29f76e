package admin

// Paging of the list endpoints. A list is read whole from the store, in
// the store's order, and one page of it is written as the JSON array of
// the reply; the next page is announced in the headers, so that clients
// that read the array body keep working:
//
//	Link: </api/v1/tenants?cursor=...&limit=100>; rel="next"
//	X-Next-Cursor: ...
//
// both absent on the last page. The audit log and the queue list page in
// the store and keep their reply objects with next_cursor.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Page sizes of the list endpoints.
const (
	defaultPageLimit = 100
	maxPageLimit     = 1000
)

// writePage writes the page of list that the request's limit and cursor
// select, as a JSON array, and announces the next page in the Link and
// X-Next-Cursor headers.
//
// key names each item of the list uniquely. The cursor is the key of the
// last item of the page, and the next page begins after that item. When
// that item is gone by then, the next page begins where the item would
// be if the list is ordered by key (byte-wise, ascending or descending:
// writePage tells from the list), else at the position the item had
// (which skips an item if others before it were removed too). Keys of
// numbers must therefore keep their order as strings (idKey).
func writePage[T any](w http.ResponseWriter, r *http.Request, list []T, key func(T) string) error {
	p := r.URL.Query()
	limit := defaultPageLimit
	if v := p.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageLimit {
			return badRequest("limit %q: must be a number from 1 to %d (default %d)", v, maxPageLimit, defaultPageLimit)
		}
		limit = n
	}
	start := 0
	if v := p.Get("cursor"); v != "" {
		c, ok := decodeCursor(r.URL.Path, v)
		if !ok {
			return badRequest("cursor %q is not one this API gave out for %s; use the Link or X-Next-Cursor header of the previous page, or leave cursor out for the first page", v, r.URL.Path)
		}
		start = resume(c, list, key)
	}
	end := min(start+limit, len(list))
	if end < len(list) {
		c := pageCursor{order: keyOrder(list, key), pos: end - 1, key: key(list[end-1])}
		next := c.encode(r.URL.Path)
		p.Set("cursor", next)
		u := url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: p.Encode()}
		w.Header().Set("Link", "<"+u.String()+`>; rel="next"`)
		w.Header().Set("X-Next-Cursor", next)
	}
	writeJSON(w, http.StatusOK, nonNil(list[start:end]))
	return nil
}

// idKey is the key of an item named by a number: fixed width, so that
// the keys sort as the numbers do.
func idKey(id int64) string {
	return fmt.Sprintf("%020d", id)
}

// pageCursor is what a cursor says: the key and the position of the
// last item of a page, and the order of the list's keys.
type pageCursor struct {
	// order is 'a' for a list in ascending order of key, 'd' for
	// descending and 'p' for any other.
	order byte
	pos   int
	key   string
}

// keyOrder tells how list is ordered by key: 'a', 'd' or 'p' (for
// pageCursor.order).
func keyOrder[T any](list []T, key func(T) string) byte {
	switch {
	case sortedBy(list, key, 1):
		return 'a'
	case sortedBy(list, key, -1):
		return 'd'
	}
	return 'p'
}

// sortedBy reports whether the keys of list strictly ascend (dir 1) or
// descend (dir -1).
func sortedBy[T any](list []T, key func(T) string, dir int) bool {
	for i := 1; i < len(list); i++ {
		if strings.Compare(key(list[i-1]), key(list[i]))*dir >= 0 {
			return false
		}
	}
	return true
}

// resume returns where in list the page after cursor c begins.
func resume[T any](c pageCursor, list []T, key func(T) string) int {
	if i := slices.IndexFunc(list, func(x T) bool { return key(x) == c.key }); i >= 0 {
		return i + 1
	}
	dir := 0
	switch c.order {
	case 'a':
		dir = 1
	case 'd':
		dir = -1
	}
	if dir != 0 && sortedBy(list, key, dir) {
		i, _ := slices.BinarySearchFunc(list, c.key, func(x T, k string) int { return strings.Compare(key(x), k) * dir })
		return i
	}
	return min(c.pos, len(list))
}

// A cursor is base64url of a tag, then the order, the position and the
// key. The tag is a checksum of the list's path and the rest, so that a
// cursor of another list, a mistyped or a made-up one is refused; it is
// not a secret: a cursor only ever selects among what the caller may
// list anyway.
const cursorTagLen = 6

func cursorTag(path string, payload []byte) []byte {
	h := sha256.New()
	h.Write([]byte("hve list cursor\x00" + path + "\x00"))
	h.Write(payload)
	return h.Sum(nil)[:cursorTagLen]
}

func (c pageCursor) encode(path string) string {
	payload := append([]byte{c.order}, binary.AppendUvarint(nil, uint64(c.pos))...)
	payload = append(payload, c.key...)
	return base64.RawURLEncoding.EncodeToString(append(cursorTag(path, payload), payload...))
}

// decodeCursor reads a cursor that encode made for the list at path.
func decodeCursor(path, s string) (pageCursor, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < cursorTagLen+2 {
		return pageCursor{}, false
	}
	tag, payload := b[:cursorTagLen], b[cursorTagLen:]
	if !bytes.Equal(tag, cursorTag(path, payload)) {
		return pageCursor{}, false
	}
	c := pageCursor{order: payload[0]}
	pos, n := binary.Uvarint(payload[1:])
	if n <= 0 || pos > math.MaxInt || !strings.ContainsRune("adp", rune(c.order)) {
		return pageCursor{}, false
	}
	c.pos, c.key = int(pos), string(payload[1+n:])
	return c, true
}
