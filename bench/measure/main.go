// Command measure runs a command and reports its wall time, CPU time and
// memory: peak RSS from the kernel (getrusage ru_maxrss, what /usr/bin/time
// -v reports as "Maximum resident set size") and, by sampling
// /proc/PID/status, the peaks of its anonymous and file-backed parts.
// The split matters for syncer: bbolt memory-maps its file, so pages of the
// catalog that the kernel may drop at will show up as file-backed RSS,
// while the Go heap and stacks are anonymous.
//
// Usage:
//
//	measure [-label L] [-o FILE] [-every 10ms] -- command args...
//
// It appends one line of key=value fields to FILE (stderr by default):
//
//	label=L wall_s= user_s= sys_s= maxrss_kb= hwm_kb= peak_anon_kb= peak_file_kb= inblock= oublock= exit=
//
// oublock counts 512-byte blocks the process wrote to the file system
// (page cache included), which shows whether a run wrote anything.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	label := flag.String("label", "", "label of this run in the report line")
	out := flag.String("o", "", "append the report line to this file (default stderr)")
	every := flag.Duration("every", 10*time.Millisecond, "sampling interval of /proc/PID/status")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("measure: ")
	if flag.NArg() == 0 {
		log.Fatal("no command; usage: measure [-label L] [-o FILE] -- command args...")
	}
	code, err := run(*label, *out, *every, flag.Args())
	if err != nil {
		log.Fatal(err)
	}
	os.Exit(code)
}

type peaks struct{ hwm, anon, file int64 }

func run(label, out string, every time.Duration, argv []string) (int, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Forward interrupts to the child instead of dying before it.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", argv[0], err)
	}
	statusPath := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status"

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var p peaks
	tick := time.NewTicker(every)
	defer tick.Stop()
	var waitErr error
loop:
	for {
		sample(statusPath, &p)
		select {
		case waitErr = <-done:
			break loop
		case s := <-sigs:
			cmd.Process.Signal(s) //nolint:errcheck // the child may be gone already
		case <-tick.C:
		}
	}
	wall := time.Since(start)

	code := 0
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		code = ee.ExitCode()
	} else if waitErr != nil {
		return 0, waitErr
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if ru == nil {
		return 0, errors.New("no rusage for the child")
	}
	line := fmt.Sprintf("label=%s wall_s=%.3f user_s=%.3f sys_s=%.3f maxrss_kb=%d hwm_kb=%d peak_anon_kb=%d peak_file_kb=%d inblock=%d oublock=%d exit=%d\n",
		label, wall.Seconds(), tv(ru.Utime), tv(ru.Stime), ru.Maxrss, p.hwm, p.anon, p.file, ru.Inblock, ru.Oublock, code)
	w := os.Stderr
	if out != "" {
		f, err := os.OpenFile(out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		w = f
	}
	if _, err := w.WriteString(line); err != nil {
		return 0, err
	}
	return code, nil
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// sample reads the memory lines of /proc/PID/status into p's maxima. A
// process that has just exited has no such lines any more; that is fine.
func sample(path string, p *peaks) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(name) {
		case "VmHWM":
			dst = &p.hwm
		case "RssAnon":
			dst = &p.anon
		case "RssFile":
			dst = &p.file
		default:
			continue
		}
		f := bytes.Fields(rest) // "1234 kB"
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseInt(string(f[0]), 10, 64); err == nil && v > *dst {
			*dst = v
		}
	}
}
