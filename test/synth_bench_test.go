package test

import (
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/streamer-dev/streamer/stacks"
)

// benchSynth synthesizes a new app per iteration on a warm jsii kernel and a
// warm Lambda build cache: the cost of one more synth in a running process.
func benchSynth(b *testing.B, build func(app awscdk.App)) {
	outdir := b.TempDir()
	for b.Loop() {
		app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(outdir)})
		build(app)
		app.Synth(nil)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/synth")
}

// BenchmarkSynthEmptyApp is the floor: an app with one empty stack.
func BenchmarkSynthEmptyApp(b *testing.B) {
	benchSynth(b, func(app awscdk.App) { awscdk.NewStack(app, jsii.String("Empty"), nil) })
}

// BenchmarkSynthStreamerStack is the full deployable stack.
func BenchmarkSynthStreamerStack(b *testing.B) {
	benchSynth(b, func(app awscdk.App) { stacks.NewStreamerStack(app, "Streamer", nil) })
}
