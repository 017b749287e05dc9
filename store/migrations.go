package store

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migration is one numbered schema change of a backend, embedded in the
// binary as dir/NNN_name.sql.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// LoadMigrations reads the NNN_name.sql files in dir of fsys, in order,
// and checks that they are numbered 1, 2, 3, … without gaps. Each backend
// embeds its own folder; the schema version is the number of migrations.
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %q: name must be NNN_name.sql", e.Name())
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %03d_%s: expected number %d", m.Version, m.Name, i+1)
		}
	}
	return ms, nil
}

// CheckVersion refuses a database whose schema version have is newer than
// this build's want (ErrTooNew: the user must upgrade leadwatch) and, for a
// read-only handle, one that is older (it cannot be migrated without
// writing: ErrReadOnly).
func CheckVersion(have, want int, readOnly bool) error {
	if have > want {
		return fmt.Errorf("%w: its schema version is %d, this build knows up to %d; upgrade leadwatch or use another --db", ErrTooNew, have, want)
	}
	if readOnly && have < want {
		return fmt.Errorf("%w: schema version %d needs migrating to %d; open it read-write once", ErrReadOnly, have, want)
	}
	return nil
}
