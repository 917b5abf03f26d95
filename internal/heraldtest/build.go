package heraldtest

import (
	"fmt"
	"os/exec"
	"path/filepath"
)

// BuildHerald builds the herald command into dir and returns the binary's
// path. It is built with the race detector when the calling test binary is
// (Race), so that a test of the binary checks it as the test checks itself.
func BuildHerald(dir string) (string, error) {
	bin := filepath.Join(dir, "herald")
	args := []string{"build", "-o", bin}
	if Race {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, "github.com/heraldhq/herald/cmd/herald")...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build herald: %w\n%s", err, out)
	}
	return bin, nil
}
