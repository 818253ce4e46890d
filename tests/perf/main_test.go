package main

import (
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
