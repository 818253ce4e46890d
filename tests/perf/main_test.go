package main

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestFirstAndLast(t *testing.T) {
	kind := func(s string) string { k, _, _ := strings.Cut(s, ":"); return k }
	for _, c := range []struct {
		name   string
		in     []string
		wanted []string
	}{
		{"three workloads are all shown",
			[]string{"init", "exec:a", "exec:b", "exec:c", "ack:a"},
			[]string{"init", "exec:a", "exec:b", "exec:c", "ack:a"}},
		{"four execs: the first and the last",
			[]string{"init", "exec:a", "exec:b", "ack:b", "exec:c", "exec:d", "ack:a"},
			[]string{"init", "exec:a", "ack:b", "exec:d", "ack:a"}},
		{"other phases are never dropped",
			[]string{"mounted", "network", "record", "signals", "device"},
			[]string{"mounted", "network", "record", "signals", "device"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := firstAndLast(c.in, kind); !reflect.DeepEqual(got, c.wanted) {
				t.Fatalf("firstAndLast(%v) = %v, want %v", c.in, got, c.wanted)
			}
		})
	}
}

// TestFailures: one failed measurement, of any kind, fails the run.
func TestFailures(t *testing.T) {
	bad := errors.New("x")
	for _, tc := range []struct {
		desc  string
		cases []measure
		st    startupFigures
		want  int // measurements failed; 0: nil
	}{
		{"all measured", []measure{{}, {}}, startupFigures{}, 0},
		{"luoinit failed", []measure{{luoErr: bad}, {}}, startupFigures{}, 1},
		{"raw and floor failed", []measure{{rawErr: bad}, {floorErr: bad}}, startupFigures{}, 2},
		{"program start failed", []measure{{}}, startupFigures{err: bad}, 1},
	} {
		err := failures(tc.cases, tc.st)
		if (err == nil) != (tc.want == 0) || (err != nil && !strings.HasPrefix(err.Error(), fmt.Sprintf("%d measurements failed", tc.want))) {
			t.Errorf("%s: %v, want %d failed", tc.desc, err, tc.want)
		}
	}
}
