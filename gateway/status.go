package gateway

import (
	"context"
	"net/http"
)

// The status page at / (issue 5) is not built yet.

func (g *Gateway) routesStatus(*http.ServeMux) {}

// recordHistory samples the gateway's figures for the status page.
func (g *Gateway) recordHistory(ctx context.Context) { <-ctx.Done() }
