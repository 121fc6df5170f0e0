package bench_test

import (
	"context"
	"fmt"

	"github.com/shmkit/shmkit/bench"
)

// A small comparison of one transport against the OS pipe, each side in
// its own process. (A program that calls Run must call bench.MaybeChild
// first thing in main, as cmd/shmkit does, since the peers are the same
// binary started again.)
func ExampleRun() {
	res, err := bench.Run(context.Background(), bench.Config{
		Transports:  []string{"shm-spsc"},
		Modes:       []string{bench.ModeStream},
		StreamSizes: []int{64},
		Messages:    5000,
		Reps:        1,
	})
	if err != nil {
		panic(err)
	}
	for _, r := range res {
		fmt.Println(r.Transport, r.Mode, r.Size, r.Messages, r.MsgsPerSec > 0, r.Ratio > 0)
	}
	// Output:
	// shm-spsc stream 64 5000 true true
	// os-pipe stream 64 5000 true true
}
