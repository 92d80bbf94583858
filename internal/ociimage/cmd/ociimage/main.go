// Command ociimage writes syncer's container image as an OCI image layout;
// scripts/image.sh runs it after building the binary.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/imgly/syncer/internal/ociimage"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("ociimage", flag.ContinueOnError)
	binary := fs.String("binary", "", "static syncer binary (required)")
	ca := fs.String("ca-certs", ociimage.CACertPath, "PEM CA bundle to ship")
	out := fs.String("out", "", "directory for the OCI layout; empty or absent (required)")
	ref := fs.String("ref", "", "image reference name in index.json (default syncer:VERSION)")
	version := fs.String("version", "", "image version when the binary's build info has none")
	revision := fs.String("revision", "", "VCS revision when the binary's build info has none")
	created := fs.String("created", "", "RFC 3339 creation time and file mtime (default: the commit time from the build info, else the epoch)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *binary == "" || *out == "" {
		return fmt.Errorf("--binary and --out are required")
	}
	spec := ociimage.Spec{Binary: *binary, CACerts: *ca}
	if *created != "" {
		t, err := time.Parse(time.RFC3339, *created)
		if err != nil {
			return fmt.Errorf("--created: %w", err)
		}
		spec.Created = t
	}
	if err := spec.FromBinary(); err != nil {
		return err
	}
	// The binary's own stamp wins: the labels then say what
	// `syncer version` prints.
	if spec.Version == "" || spec.Version == "(devel)" {
		spec.Version = *version
	}
	if spec.Revision == "" {
		spec.Revision = *revision
	}
	img, err := ociimage.Build(spec)
	if err != nil {
		return err
	}
	if *ref == "" {
		*ref = "syncer:" + ociimage.Tag(spec.Version)
	}
	if err := ociimage.WriteLayout(*out, img, *ref); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s %s %s\n", *out, *ref, d)
	return nil
}
