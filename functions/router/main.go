// Command router is the router Lambda: it answers API Gateway WebSocket events
// ($connect, $disconnect, $default) with the demo actions registered.
package main

import (
	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/app"
	"github.com/streamer-dev/streamer/functions/demo"
)

func main() {
	reg := actions.NewRegistry()
	demo.Register(reg)
	app.StartRouter(reg)
}
