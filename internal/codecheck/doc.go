// Package codecheck holds tests of the repository's own code: habits the
// module keeps that the compiler and go vet do not check.
package codecheck
