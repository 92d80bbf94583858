// Package ociimage builds syncer's container image without a Docker daemon
// and without network: an empty base plus one layer holding the static
// binary, the CA certificates and a passwd/group entry for the nonroot user,
// written as an OCI image layout (index.json, blobs/sha256/...). The result is
// byte-for-byte reproducible: every mtime and the created time come from the
// spec, not the clock.
package ociimage

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The nonroot user of distroless images: the same uid/gid makes volumes
// prepared for either image interchangeable.
const (
	UID  = 65532
	GID  = 65532
	User = "65532:65532"
)

// Paths inside the image.
const (
	BinaryPath = "/syncer"
	CACertPath = "/etc/ssl/certs/ca-certificates.crt"
	ConfigPath = "/etc/syncer/syncer.yaml"
)

// Spec says what goes into the image.
type Spec struct {
	// Binary is the path of a static syncer binary for OS/Arch.
	Binary string
	// CACerts is the path of a PEM bundle (Debian's ca-certificates).
	CACerts string
	// Arch is the GOARCH of Binary (default: this program's).
	Arch string
	// Version and Revision label the image; Created is its creation time
	// and every file's mtime. FromBinary fills them from the build info.
	Version  string
	Revision string
	Created  time.Time
	// Source is the repository URL for org.opencontainers.image.source.
	Source string
}

// FromBinary completes spec from the Go build info stamped into
// spec.Binary: the module version, the VCS revision and the commit time,
// so that the same commit gives the same image.
func (s *Spec) FromBinary() error {
	bi, err := buildinfo.ReadFile(s.Binary)
	if err != nil {
		return fmt.Errorf("read build info of %s: %w", s.Binary, err)
	}
	if s.Version == "" {
		s.Version = bi.Main.Version
	}
	for _, st := range bi.Settings {
		switch st.Key {
		case "vcs.revision":
			if s.Revision == "" {
				s.Revision = st.Value
			}
		case "vcs.time":
			if t, err := time.Parse(time.RFC3339, st.Value); err == nil && s.Created.IsZero() {
				s.Created = t
			}
		case "GOARCH":
			if s.Arch == "" {
				s.Arch = st.Value
			}
		}
	}
	return nil
}

func (s *Spec) defaults() {
	if s.Arch == "" {
		s.Arch = runtime.GOARCH
	}
	if s.Version == "" || s.Version == "(devel)" {
		s.Version = "dev"
	}
	if s.Source == "" {
		s.Source = "https://github.com/imgly/syncer"
	}
	// Reproducible without VCS data too: the epoch, not the clock.
	if s.Created.IsZero() {
		s.Created = time.Unix(0, 0)
	}
	s.Created = s.Created.UTC()
}

// Labels are the org.opencontainers.image.* annotations of the image.
func (s *Spec) Labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "syncer",
		"org.opencontainers.image.description": "Reconciles cloud buckets against a catalog and publishes changes to NATS JetStream",
		"org.opencontainers.image.source":      s.Source,
		"org.opencontainers.image.url":         s.Source,
		"org.opencontainers.image.version":     s.Version,
		"org.opencontainers.image.revision":    s.Revision,
		"org.opencontainers.image.created":     s.Created.Format(time.RFC3339),
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.vendor":      "img.ly",
	}
}

// Build returns the image spec describes.
func Build(spec Spec) (v1.Image, error) {
	spec.defaults()
	bin, err := os.ReadFile(spec.Binary)
	if err != nil {
		return nil, fmt.Errorf("binary: %w", err)
	}
	ca, err := os.ReadFile(spec.CACerts)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w (install Debian's ca-certificates: apt-get install -y ca-certificates)", err)
	}
	if !bytes.Contains(ca, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("CA certificates: %s holds no PEM certificate", spec.CACerts)
	}
	tarBytes, err := rootfs(spec.Created, bin, ca)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   v1.Time{Time: spec.Created},
			CreatedBy: "scripts/image.sh (internal/ociimage)",
			Comment:   "syncer binary, CA certificates, nonroot passwd",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = spec.Arch
	cf.Created = v1.Time{Time: spec.Created}
	cf.Author = ""
	cf.Config = v1.Config{
		User:       User,
		Entrypoint: []string{BinaryPath},
		Cmd:        []string{"run", "--config", ConfigPath},
		WorkingDir: "/",
		Env:        []string{"SSL_CERT_FILE=" + CACertPath},
		ExposedPorts: map[string]struct{}{
			"8080/tcp": {},
		},
		Labels: spec.Labels(),
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return mutate.Annotations(img, spec.Labels()).(v1.Image), nil
}

// rootfs is the layer's tar: directories first, fixed owners and mtimes.
func rootfs(mtime time.Time, bin, ca []byte) ([]byte, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, GID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", GID)
	type entry struct {
		name string
		mode int64
		uid  int
		body []byte
		dir  bool
	}
	entries := []entry{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, body: []byte(group)},
		{name: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, body: ca},
		{name: "etc/syncer/", mode: 0o755, dir: true},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, uid: UID, dir: true},
		{name: "syncer", mode: 0o755, body: bin},
		{name: "tmp/", mode: 0o1777, dir: true},
		// The catalog's mount point, owned by nonroot so that `docker
		// run` without a volume still works.
		{name: "var/", mode: 0o755, dir: true},
		{name: "var/lib/", mode: 0o755, dir: true},
		{name: "var/lib/syncer/", mode: 0o755, uid: UID, dir: true},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: mtime,
			Format: tar.FormatPAX, Typeflag: tar.TypeReg, Size: int64(len(e.body)),
		}
		if e.dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		// PAX records would carry access/change times; keep the header
		// to what is fixed.
		h.PAXRecords = nil
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, fmt.Errorf("layer %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteLayout writes img as an OCI image layout in dir, tagged ref (the
// org.opencontainers.image.ref.name annotation skopeo, crane and docker
// load look for). dir must be empty or absent.
func WriteLayout(dir string, img v1.Image, ref string) error {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("layout %s: directory is not empty", dir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref,
	})); err != nil {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	return nil
}

// Tag makes version usable as an image tag ([A-Za-z0-9_.-], at most 128
// characters): a Go pseudo-version's "+dirty" becomes "-dirty".
func Tag(version string) string {
	if version == "" || version == "(devel)" {
		return "dev"
	}
	b := []byte(version)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			b[i] = '-'
		}
	}
	if len(b) > 128 {
		b = b[:128]
	}
	return string(b)
}
