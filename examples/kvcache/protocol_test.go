package main

import (
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		line    string
		want    Request
		wantErr string
	}{
		{line: "SET k v", want: Request{Op: OpSet, Key: "k", Value: "v"}},
		{line: "set k v", want: Request{Op: OpSet, Key: "k", Value: "v"}},
		{line: "SET k v\r", want: Request{Op: OpSet, Key: "k", Value: "v"}},
		{line: "SET K V", want: Request{Op: OpSet, Key: "K", Value: "V"}},
		{line: "SET ключ значение", want: Request{Op: OpSet, Key: "ключ", Value: "значение"}},
		{line: "GET k", want: Request{Op: OpGet, Key: "k"}},
		{line: "Get k", want: Request{Op: OpGet, Key: "k"}},
		{line: "DEL k", want: Request{Op: OpDel, Key: "k"}},
		{line: "COUNT", want: Request{Op: OpCount}},
		{line: "STATS", want: Request{Op: OpStats}},
		{line: "PUSH", want: Request{Op: OpPush}},
		{line: "QUIT", want: Request{Op: OpQuit}},
		{line: "SET " + long(maxKeyLen) + " " + long(maxValueLen), want: Request{Op: OpSet, Key: long(maxKeyLen), Value: long(maxValueLen)}},

		{line: "", wantErr: "empty request"},
		{line: "\r", wantErr: "empty request"},
		{line: "FLUSH", wantErr: `unknown command "FLUSH"`},
		{line: " GET k", wantErr: `unknown command ""`},
		{line: "SET", wantErr: "SET: want SET key value"},
		{line: "SET k", wantErr: "SET: want SET key value"},
		{line: "SET k v w", wantErr: "SET: want SET key value"},
		{line: "SET k hello world", wantErr: "a value holds no space"},
		{line: "SET  k v", wantErr: "SET: want SET key value"},
		{line: "SET k  v", wantErr: "SET: want SET key value"},
		{line: "SET k v ", wantErr: "SET: want SET key value"},
		{line: "SET  k", wantErr: "SET: empty key"},
		{line: "SET k ", wantErr: "SET: empty value"},
		{line: "GET", wantErr: "GET: want GET key"},
		{line: "GET a b", wantErr: "GET: want GET key"},
		{line: "DEL", wantErr: "DEL: want DEL key"},
		{line: "COUNT x", wantErr: "COUNT: takes no argument"},
		{line: "QUIT now", wantErr: "QUIT: takes no argument"},
		{line: "SET k\tx v", wantErr: "key holds byte 0x09 at position 1"},
		{line: "SET k v\x00", wantErr: "value holds byte 0x00 at position 1"},
		{line: "GET k\r\r", wantErr: "key holds byte 0x0d"},
		{line: "GET a\nb", wantErr: "key holds byte 0x0a"},
		{line: "GET \x7f", wantErr: "key holds byte 0x7f"},
		{line: "GET " + long(maxKeyLen+1), wantErr: "key is 256 bytes long, at most 255"},
		{line: "SET k " + long(maxValueLen+1), wantErr: "value is 65537 bytes long, at most 65536"},
		{line: "SET k " + long(maxLine), wantErr: "request line too long"},
	}
	for _, tt := range tests {
		name := tt.line
		if len(name) > 30 {
			name = name[:30]
		}
		t.Run(name, func(t *testing.T) {
			got, err := ParseRequest([]byte(tt.line))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRequest(%.60q) = %+v, %v; want an error with %q", tt.line, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseRequest(%.60q) = %.60v, %v; want %.60v", tt.line, got, err, tt.want)
			}
			if again, err := ParseRequest([]byte(got.String())); err != nil || again != got {
				t.Fatalf("String() %.60q parses to %.60v, %v", got.String(), again, err)
			}
		})
	}
}
