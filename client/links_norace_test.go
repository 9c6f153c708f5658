//go:build !race

package client_test

// raceEnabled: timing targets are not checked under the race detector.
const raceEnabled = false
