package smtp

import (
	"bufio"
	"bytes"
	"io"
	"net/textproto"
	"testing"
)

// dotWriter must write exactly what net/textproto's DotWriter writes, for
// any input cut into any writes.
func FuzzDotWriter(f *testing.F) {
	for _, s := range []string{"", "a", ".", "a\r\nb\r\n", "a\nb", ".x\r\n..y\n.", "a\r", "\r\n.\r\n", "\r\r\n", "x\r\rb\n\n."} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		var want, got bytes.Buffer
		tw := textproto.NewWriter(bufio.NewWriter(&want))
		wc := tw.DotWriter()
		gw := bufio.NewWriter(&got)
		dw := newDotWriter(gw)
		step := int(cut%7) + 1
		for i := 0; i < len(data); i += step {
			end := i + step
			if end > len(data) {
				end = len(data)
			}
			if _, err := wc.Write(data[i:end]); err != nil {
				t.Fatal(err)
			}
			if n, err := dw.Write(data[i:end]); err != nil || n != end-i {
				t.Fatalf("Write = %d, %v; want %d, nil", n, err, end-i)
			}
		}
		wc.Close()
		if err := dw.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("input %q (writes of %d):\n got %q\nwant %q", data, step, got.Bytes(), want.Bytes())
		}
	})
}

// BenchmarkDotWriter writes a 100 KB message of 78-byte lines.
func BenchmarkDotWriter(b *testing.B) {
	line := append(bytes.Repeat([]byte("x"), 76), '\r', '\n')
	msg := bytes.Repeat(line, 100<<10/len(line))
	for _, bc := range []struct {
		name string
		new  func(*bufio.Writer) io.WriteCloser
	}{
		{"textproto", func(w *bufio.Writer) io.WriteCloser { return textproto.NewWriter(w).DotWriter() }},
		{"hve", func(w *bufio.Writer) io.WriteCloser { return newDotWriter(w) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bw := bufio.NewWriter(io.Discard)
			b.SetBytes(int64(len(msg)))
			for i := 0; i < b.N; i++ {
				w := bc.new(bw)
				w.Write(msg)
				w.Close()
			}
		})
	}
}
