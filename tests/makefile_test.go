// Package tests holds the checks of the repository as a whole; the VM
// harness, the guests, the scenarios and make perf are its subdirectories.
package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMakeFuzzRunsEveryTarget: `make fuzz` names its targets one by one;
// every fuzz function in the tree must be among them, in its package.
func TestMakeFuzzRunsEveryTarget(t *testing.T) {
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile(`-fuzz '\^(Fuzz\w+)\$\$' .* \./(\S+)/`).FindAllStringSubmatch(string(mk), -1) {
		listed[m[2]+" "+m[1]] = true
	}
	if len(listed) == 0 {
		t.Fatal("no fuzz targets found in the Makefile")
	}
	fuzzFunc := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(`)
	found := 0
	err = filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		pkg, _ := filepath.Rel("..", filepath.Dir(path))
		for _, m := range fuzzFunc.FindAllStringSubmatch(string(b), -1) {
			found++
			if !listed[filepath.ToSlash(pkg)+" "+m[1]] {
				t.Errorf("%s (./%s/) is not run by make fuzz", m[1], filepath.ToSlash(pkg))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < len(listed) {
		t.Errorf("%d fuzz functions in the tree, %d targets in the Makefile: one names a function that is not there", found, len(listed))
	}
}
