// Command streamer sends one action to a Streamer WebSocket endpoint with the
// Go client and prints its progress and result:
//
//	go run ./client/cmd/streamer -url ws://127.0.0.1:8080/ -token $TOKEN delay '{"seconds":3}'
//	go run ./client/cmd/streamer -token $TOKEN status '{"request_id":"..."}'
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/streamer-dev/streamer/client"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "streamer:", err)
		os.Exit(1)
	}
}

func run() error {
	url := flag.String("url", "ws://127.0.0.1:8080/", "WebSocket endpoint")
	token := flag.String("token", os.Getenv("STREAMER_TOKEN"), "JWT (default $STREAMER_TOKEN)")
	id := flag.String("id", "", "request id, the idempotency key (default: random)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: streamer [-url URL] [-token JWT] [-id ID] ACTION [PAYLOAD-JSON]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 1 || flag.NArg() > 2 {
		flag.Usage()
		os.Exit(2)
	}
	action := flag.Arg(0)
	var payload json.RawMessage
	if flag.NArg() == 2 {
		payload = json.RawMessage(flag.Arg(1))
		if !json.Valid(payload) {
			return errors.New("payload is not valid JSON")
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c, err := client.Dial(ctx, *url, *token, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	var res any
	switch action {
	case "status", "cancel", "subscribe":
		var target struct {
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal(payload, &target); err != nil || target.RequestID == "" {
			return fmt.Errorf("%s needs the payload {\"request_id\": \"...\"}", action)
		}
		switch action {
		case "status":
			res, err = c.Status(ctx, target.RequestID)
		case "cancel":
			res, err = "cancelled", c.Cancel(ctx, target.RequestID)
		default:
			res, err = c.Subscribe(ctx, target.RequestID, printProgress)
		}
	default:
		var opts []client.RequestOption
		if *id != "" {
			opts = append(opts, client.WithID(*id))
		}
		var p any
		if payload != nil {
			p = payload
		}
		res, err = c.Request(ctx, action, p, printProgress, opts...)
	}
	if err != nil {
		return err
	}
	out, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}

func printProgress(p client.Progress) {
	fmt.Fprintf(os.Stderr, "%5.1f%%  %s\n", p.Percentage, p.Message)
}
