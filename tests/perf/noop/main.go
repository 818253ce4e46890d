// Command noop is the Go program that does nothing: `make perf` times its
// start in the VM beside a C one and luoinit's, to show what the Go
// runtime alone costs before main.
package main

func main() {}
