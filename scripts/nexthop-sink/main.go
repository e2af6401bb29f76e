// Command nexthop-sink is a no-op SMTP next hop for benchmarks: it accepts
// every message on a loopback address, keeps nothing, and prints once a
// second how many messages and recipients it has accepted, as one JSON
// line ({"t_s":..,"messages":..,"rcpts":..}). scripts/bench-e2e.sh routes
// hve's mail to it to measure delivery.
//
//	go run ./scripts/nexthop-sink -listen 127.0.0.1:2525
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
)

// counts are what the sink has accepted.
type counts struct {
	messages, rcpts atomic.Int64
}

type session struct {
	c     *counts
	rcpts int64
}

func (s *session) Mail(string, *smtp.MailOptions) error { return nil }
func (s *session) Rcpt(string, *smtp.RcptOptions) error { s.rcpts++; return nil }
func (s *session) Reset()                               { s.rcpts = 0 }
func (s *session) Logout() error                        { return nil }

// Data reads the message and throws it away.
func (s *session) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.c.messages.Add(1)
	s.c.rcpts.Add(s.rcpts)
	return nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:2525", "loopback `address` to accept SMTP on")
	every := flag.Duration("every", time.Second, "how often to print the counts")
	flag.Parse()
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	if ip := l.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		log.Fatalf("refusing to listen on %s: the sink is for loopback benchmarks", l.Addr())
	}
	c := &counts{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{c: c}, nil }))
	srv.Domain = "nexthop-sink.test"
	srv.MaxMessageBytes = 64 << 20
	srv.MaxRecipients = 10000
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	srv.ErrorLog = log.New(io.Discard, "", 0)
	go srv.Serve(l)
	log.Printf("nexthop-sink listening on %s", l.Addr())

	start := time.Now()
	print := func() {
		fmt.Printf("{\"t_s\":%.1f,\"messages\":%d,\"rcpts\":%d}\n", time.Since(start).Seconds(), c.messages.Load(), c.rcpts.Load())
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	tick := time.NewTicker(*every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			print()
		case <-stop:
			print()
			srv.Close()
			return
		}
	}
}
