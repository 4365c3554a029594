// Command processor is the processor Lambda: it runs queued requests from the
// requests table's stream and the retry queue. Embedders write the same three
// lines with their own actions registered.
package main

import (
	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/app"
	"github.com/streamer-dev/streamer/functions/demo"
)

func main() {
	reg := actions.NewRegistry()
	demo.Register(reg)
	app.StartProcessor(reg)
}
