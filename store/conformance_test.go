package store_test

import (
	"github.com/leadwatch/leadwatch/callbacks"
	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/ui"
)

// The store is wired into the three consumers by main; these checks keep
// it honest without store importing them.
var (
	_ crm.Outbox          = (*store.DB)(nil)
	_ callbacks.EventSink = (*store.DB)(nil)
	_ ui.Source           = (*store.DB)(nil)
)
