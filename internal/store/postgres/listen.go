package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listen calls fn with the generation each time any instance on the schema
// changes a user, agent, delegation or key: the change's transaction sends
// NOTIFY <schema>_changes, '<generation>' (mandate_changes for the default
// schema), which PostgreSQL delivers when it commits. Listen holds a
// dedicated connection of its own (not one of the pool's) and, once it
// listens, first calls fn with the current generation, so that a caller
// that reconnects catches up on what it missed. fn runs on Listen's
// goroutine and must be quick; notifications may be coalesced and a
// generation may be reported more than once.
//
// Listen returns nil when ctx ends, and an error wrapping
// store.ErrUnavailable when the connection cannot be made or breaks; the
// caller reconnects by calling it again, and should also poll Generation
// now and then, since a connection lost without a word from the network is
// noticed only by TCP keepalive.
func (s *Store) Listen(ctx context.Context, fn func(generation int64)) error {
	err := s.listen(ctx, fn)
	if err != nil && ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("postgres: listen on %s: %w", s.channel, err)
	}
	return nil
}

func (s *Store) listen(ctx context.Context, fn func(generation int64)) error {
	setup, cancel := s.bound(ctx)
	defer cancel()
	conn, err := pgx.ConnectConfig(setup, s.listenConfig.Copy())
	if err != nil {
		return fmt.Errorf("connect: %w", dbErr(err))
	}
	defer func() {
		closing, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(closing)
	}()
	if _, err := conn.Exec(setup, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return dbErr(err)
	}
	g, err := generation(setup, conn)
	if err != nil {
		return err
	}
	fn(g)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return dbErr(err)
		}
		g, err := strconv.ParseInt(n.Payload, 10, 64)
		if err != nil {
			// Not a payload this package sends (someone ran NOTIFY by
			// hand): read the counter instead of trusting it.
			read, cancel := s.bound(ctx)
			g, err = generation(read, conn)
			cancel()
			if err != nil {
				return err
			}
		}
		fn(g)
	}
}

// generation reads the change counter on conn.
func generation(ctx context.Context, conn *pgx.Conn) (int64, error) {
	var g int64
	if err := conn.QueryRow(ctx, "SELECT value FROM generation WHERE id = 1").Scan(&g); err != nil {
		return 0, fmt.Errorf("read generation: %w", dbErr(err))
	}
	return g, nil
}
