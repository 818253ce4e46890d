package manifest

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// seeds adds the example files and a few small documents.
func seeds(f *testing.F) {
	for _, name := range []string{"testdata/manifest.toml", "testdata/config.toml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	b, err := fullManifest().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	m := fullManifest()
	m.Network = networkExample()
	if b, err = m.Marshal(); err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	for _, s := range []string{
		withoutSession(sockWorkload),
		sockWorkload + "[[workload.fd]]\nname = \"a\"\ntoken = 1\n",
		pidfdWorkload + "fd = [{name = \"a\", number = 3, token = 1}]\n",
		"version = 1\nwritten = 2025-01-01T00:00:00+02:00\n[timing]\nreboot = {monotonic_ns = 5, realtime = 2025-01-01T00:00:00Z}\n",
		"version = 1\nworkload = []\n",
		// The memfd PID 1 makes, the stop command, a route of a rule's table.
		"version = 1\n[[workload]]\nname = \"vm\"\nargv = [\"/bin/vm\"]\nhandoff = \"fdstore\"\nstop_command = [\"/bin/save\", \"--now\"]\nstop_timeout = \"60s\"\n[[workload.fd]]\nname = \"ram\"\nsize = \"64MiB\"\n",
		"version = 1\n[network]\nroute = [{dst = \"default\", gateway = \"10.0.0.254\", table = 100}]\nrule = [{priority = 10, family = \"inet\", table = 100}]\n",
		"version = 1\n[network]\ncarry = \"listed\"\ninterfaces = [\"eth0\"]\nlink = [{name = \"d0\", kind = \"dummy\", mtu = 1400, address = [{cidr = \"10.0.0.1/24\"}]}]\nroute = [{dst = \"default\", gateway = \"10.0.0.254\", dev = \"d0\"}]\nrule = [{priority = 10, family = \"inet\", table = 10, fwmark = 1}]\n",
	} {
		f.Add([]byte(s))
	}
	// The hostile inputs of the limits test, cut down to just past each
	// limit (a seed of 100 KB makes every mutation slow), and the other
	// defects that were found with hostile files.
	for _, s := range []string{
		"version = 1\nx = " + strings.Repeat("{a=", MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1) + "\n",
		"version = 1\nx = " + strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1) + "\n",
		"version = 1\n[" + strings.Repeat("t.", MaxKeyParts) + "t]\nk = 1\n",
		"version = 1\n" + strings.Repeat("k", MaxKeyLen+1) + " = 1\n",
		"version = 1\n\x00",
		"version = 1\nworkload = {a = 1}\n",
		"version = 1\n[[workload]]\nname = [\"kv\"]\nargv = \"/bin/kv\"\nuid = \"root\"\n",
		sockWorkload + "[[workload.fd]]\nname = \"a/b\"\ntoken = 1\n[[workload.fd]]\nname = \"..\"\ntoken = 2\n",
		strings.Replace(sockWorkload, `name = "kv"`, `name = "."`, 1),
		strings.Replace(pidfdWorkload, "pid = 42", "pid = 4294967297", 1) + "fd = [{name = \"a\", number = 4294967296, token = 1}]\n",
		strings.Replace(sockWorkload, `session = "luoinit.kv"`, `session = "luoinit"`, 1),
		"generation = 0\n" + sockWorkload + "[[workload.fd]]\nname = \"a\"\ntoken = 1\nkind = \"teapot\"\n",
	} {
		f.Add([]byte(s))
	}
}

// FuzzParse: Parse never panics, and whatever it accepts marshals and
// parses back to the same manifest, and marshals again to the same bytes.
func FuzzParse(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		indexLines(data)
		m, err := Parse(data)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("an error without text")
			}
			return
		}
		b, err := m.Marshal()
		if err != nil {
			t.Fatalf("Parse accepted what Marshal refuses: %v", err)
		}
		m2, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse refuses what Marshal wrote: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the manifest:\n%+v\n%+v\n%s", m, m2, b)
		}
		b2, err := m2.Marshal()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("second Marshal differs (%v):\n%s\n---\n%s", err, b, b2)
		}
	})
}

// FuzzParseConfig: ParseConfig never panics; whatever it accepts encodes
// and parses back to the same config, and makes a valid manifest once
// tokens are assigned.
func FuzzParseConfig(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("an error without text")
			}
			return
		}
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(c); err != nil {
			t.Fatalf("encode: %v", err)
		}
		c2, err := ParseConfig(buf.Bytes())
		if err != nil {
			t.Fatalf("ParseConfig refuses its own config encoded: %v\n%s", err, buf.Bytes())
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v\n%s", c, c2, buf.Bytes())
		}

		m := c.NewManifest()
		for i := range m.Workloads {
			for j := range m.Workloads[i].FDs {
				m.Workloads[i].FDs[j].Token = uint64(j + 1)
			}
		}
		b, err := m.Marshal()
		if err != nil {
			t.Fatalf("a valid config makes an invalid manifest: %v", err)
		}
		m2, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse refuses what Marshal wrote: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the manifest:\n%+v\n%+v\n%s", m, m2, b)
		}
	})
}
