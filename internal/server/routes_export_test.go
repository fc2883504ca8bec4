package server

import (
	"maps"
	"slices"
)

// Routes returns the patterns of every route s mounts, sorted, as
// http.ServeMux reads them ("GET /admin/users"): the patterns routes
// names for the metrics.
func (s *Server) Routes() []string {
	return slices.Sorted(maps.Keys(s.routeNames))
}
