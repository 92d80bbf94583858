package ociimage_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/imgly/syncer/internal/ociimage"
)

// TestImageScript runs scripts/image.sh as a user would and inspects the OCI
// layout it writes: a numeric non-root user, the entrypoint, CA certificates,
// no shell, and a static binary that starts.
func TestImageScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the image (-short)")
	}
	if _, err := os.Stat(ociimage.CACertPath); err != nil {
		t.Fatalf("scripts/image.sh needs Debian's CA bundle %s (apt-get install -y ca-certificates): %v", ociimage.CACertPath, err)
	}
	dir := filepath.Join(t.TempDir(), "image")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "../../scripts/image.sh", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/image.sh: %v\n%s", err, out)
	}
	for _, f := range []string{"index.json", "oci-layout", "blobs/sha256"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("layout lacks %s: %v", f, err)
		}
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index has %d manifests, want 1", len(im.Manifests))
	}
	if ref := im.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; !strings.HasPrefix(ref, "syncer:") {
		t.Errorf("ref.name = %q, want syncer:TAG", ref)
	}
	img, err := p.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	// Digests, sizes, diff ids and media types agree: what skopeo, crane
	// and docker load verify.
	if err := validate.Index(idx); err != nil {
		t.Errorf("the layout does not validate: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	checkConfig(t, cf)
	files := layerFiles(t, img)

	if _, ok := files["bin/sh"]; ok {
		t.Error("image has /bin/sh")
	}
	for name := range files {
		if base := filepath.Base(name); base == "sh" || base == "bash" || base == "busybox" || base == "ash" {
			t.Errorf("image has a shell: /%s", name)
		}
	}
	pool := x509.NewCertPool()
	if ca := files["etc/ssl/certs/ca-certificates.crt"]; !pool.AppendCertsFromPEM(ca) {
		t.Error("no CA certificates at /etc/ssl/certs/ca-certificates.crt")
	}
	if !strings.Contains(string(files["etc/passwd"]), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd lacks nonroot 65532:\n%s", files["etc/passwd"])
	}
	if !strings.Contains(string(files["etc/group"]), "nonroot:x:65532:") {
		t.Errorf("/etc/group lacks nonroot 65532:\n%s", files["etc/group"])
	}

	bin, ok := files["syncer"]
	if !ok {
		t.Fatal("no /syncer in the layer")
	}
	if !bytes.HasPrefix(bin, []byte("\x7fELF")) {
		t.Fatal("/syncer is not an ELF binary")
	}
	if bytes.Contains(bin, []byte("/lib64/ld-linux")) || bytes.Contains(bin, []byte("/lib/ld-musl")) {
		t.Error("/syncer asks for a dynamic loader; want a static binary")
	}
	exe := filepath.Join(t.TempDir(), "syncer")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// Empty environment and a root without CA paths: what a scratch image
	// gives the binary.
	run := exec.CommandContext(ctx, exe, "version")
	run.Env = []string{}
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("/syncer version: %v\n%s", err, out)
	}
	if f := strings.Fields(string(out)); len(f) < 2 || f[0] != "syncer" {
		t.Errorf("/syncer version printed %q, want \"syncer VERSION\"", out)
	}
}

func checkConfig(t *testing.T, cf *v1.ConfigFile) {
	t.Helper()
	uid, gid, ok := strings.Cut(cf.Config.User, ":")
	if !ok {
		t.Errorf("user %q: want numeric uid:gid", cf.Config.User)
	}
	for _, id := range []string{uid, gid} {
		if n, err := strconv.Atoi(id); err != nil || n == 0 {
			t.Errorf("user %q: want numeric non-root ids", cf.Config.User)
		}
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != "/syncer" {
		t.Errorf("entrypoint %q, want /syncer", got)
	}
	if got := strings.Join(cf.Config.Cmd, " "); got != "run --config /etc/syncer/syncer.yaml" {
		t.Errorf("cmd %q", got)
	}
	if cf.OS != "linux" || cf.Architecture == "" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	for _, l := range []string{"title", "source", "version", "revision", "created"} {
		if _, ok := cf.Config.Labels["org.opencontainers.image."+l]; !ok {
			t.Errorf("label org.opencontainers.image.%s missing", l)
		}
	}
}

// layerFiles reads every regular file of the image's layers.
func layerFiles(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			name := strings.TrimPrefix(h.Name, "./")
			switch h.Typeflag {
			case tar.TypeReg:
				b, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				files[name] = b
			case tar.TypeSymlink, tar.TypeLink:
				files[name] = nil // a link to a shell is a shell
			}
		}
		rc.Close()
	}
	return files
}

// TestBuildDeterministic: the same inputs give the same digest; the
// created time is the spec's, not the clock's.
func TestBuildDeterministic(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "syncer")
	ca := filepath.Join(dir, "ca.crt")
	os.WriteFile(bin, []byte("\x7fELF not really"), 0o755)
	os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o644)
	spec := ociimage.Spec{Binary: bin, CACerts: ca, Version: "v1.2.3", Revision: "abc", Arch: "amd64",
		Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	digest := func() v1.Hash {
		img, err := ociimage.Build(spec)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a := digest()
	if b := digest(); a != b {
		t.Errorf("digests differ: %s vs %s", a, b)
	}
	img0, err := ociimage.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	if cf, _ := img0.ConfigFile(); !cf.Created.Time.Equal(spec.Created) {
		t.Errorf("created %v, want %v", cf.Created.Time, spec.Created)
	}
	spec.Version = "v1.2.4"
	if c := digest(); c == a {
		t.Error("a different version gave the same digest")
	}

	// Bad input: a missing CA bundle names what to install.
	spec.CACerts = filepath.Join(dir, "nope")
	if _, err := ociimage.Build(spec); err == nil || !strings.Contains(err.Error(), "ca-certificates") {
		t.Errorf("missing CA bundle: err = %v", err)
	}
	// A layout directory that is not empty is refused, not merged into.
	spec.CACerts = ca
	img, err := ociimage.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := ociimage.WriteLayout(dir, img, "syncer:x"); err == nil {
		t.Error("WriteLayout into a non-empty directory succeeded")
	}
}

func TestTag(t *testing.T) {
	for in, want := range map[string]string{
		"": "dev", "(devel)": "dev", "v1.2.3": "v1.2.3",
		"v0.0.0-20261201205710-aacb12c+dirty": "v0.0.0-20261201205710-aacb12c-dirty",
	} {
		if got := ociimage.Tag(in); got != want {
			t.Errorf("Tag(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDockerfileMatches: the Dockerfile (for teams with Docker) builds the
// image scripts/image.sh builds: same user, entrypoint, command, build
// flags and labels, on a base without a shell.
func TestDockerfileMatches(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []string{
		"USER " + ociimage.User,
		`ENTRYPOINT ["` + ociimage.BinaryPath + `"]`,
		`CMD ["run", "--config", "` + ociimage.ConfigPath + `"]`,
		"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
	var last string
	for _, l := range strings.Split(df, "\n") {
		if strings.HasPrefix(l, "FROM ") {
			last = l
		}
	}
	if !strings.Contains(last, "distroless/static") || !strings.Contains(last, "nonroot") {
		t.Errorf("final stage %q: want distroless static nonroot (no shell)", last)
	}
	spec := ociimage.Spec{}
	for l := range spec.Labels() {
		if l != "org.opencontainers.image.created" && !strings.Contains(df, l+"=") {
			t.Errorf("Dockerfile lacks label %s", l)
		}
	}
}
