package schedule

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// spool holds deletion candidates until a listing is known to be complete.
// The first memLimit stay in memory; beyond that they go to a temporary file,
// so that a bucket emptied of ten million objects does not need ten million
// keys in memory.
type spool struct {
	dir  string
	mem  []candidate
	file *os.File
	w    *bufio.Writer
	n    int
}

type candidate struct {
	key string
	seq uint64
}

const memLimit = 8192

func newSpool(dir string) *spool { return &spool{dir: dir} }

func (s *spool) add(key string, seq uint64) error {
	s.n++
	s.mem = append(s.mem, candidate{key, seq})
	if len(s.mem) < memLimit {
		return nil
	}
	if s.file == nil {
		f, err := os.CreateTemp(s.dir, "syncer-deletes-*")
		if err != nil {
			return fmt.Errorf("spool deletion candidates: %w", err)
		}
		// Unlinked at once: nothing is left behind if the process dies.
		os.Remove(f.Name())
		s.file, s.w = f, bufio.NewWriterSize(f, 64<<10)
	}
	var hdr [2 * binary.MaxVarintLen64]byte
	for _, c := range s.mem {
		n := binary.PutUvarint(hdr[:], c.seq)
		n += binary.PutUvarint(hdr[n:], uint64(len(c.key)))
		if _, err := s.w.Write(hdr[:n]); err != nil {
			return fmt.Errorf("spool deletion candidates: %w", err)
		}
		if _, err := s.w.WriteString(c.key); err != nil {
			return fmt.Errorf("spool deletion candidates: %w", err)
		}
	}
	s.mem = s.mem[:0]
	return nil
}

// each calls fn for every candidate in the order they were added.
func (s *spool) each(fn func(key string, seq uint64) error) error {
	if s.file != nil {
		if err := s.w.Flush(); err != nil {
			return fmt.Errorf("spool deletion candidates: %w", err)
		}
		if _, err := s.file.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("spool deletion candidates: %w", err)
		}
		r := bufio.NewReaderSize(s.file, 64<<10)
		for {
			seq, err := binary.ReadUvarint(r)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("read spooled deletion candidates: %w", err)
			}
			n, err := binary.ReadUvarint(r)
			if err != nil {
				return fmt.Errorf("read spooled deletion candidates: %w", err)
			}
			key := make([]byte, n)
			if _, err := io.ReadFull(r, key); err != nil {
				return fmt.Errorf("read spooled deletion candidates: %w", err)
			}
			if err := fn(string(key), seq); err != nil {
				return err
			}
		}
	}
	for _, c := range s.mem {
		if err := fn(c.key, c.seq); err != nil {
			return err
		}
	}
	return nil
}

func (s *spool) close() {
	if s.file != nil {
		s.file.Close()
	}
}
