//go:build !floor

package main

func floor() {}
