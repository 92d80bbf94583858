package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/imgly/syncer/worker"
)

// scan asks the worker to reconcile source id now and returns the result.
// A scan takes as long as the bucket needs: no client timeout, only ctx.
func (c *client) scan(ctx context.Context, id string, allowMassDelete bool) (worker.ScanResult, error) {
	path := "/admin/sources/" + url.PathEscape(id) + "/scan?allowMassDelete=" + strconv.FormatBool(allowMassDelete)
	resp, err := c.do(ctx, &http.Client{}, http.MethodPost, path, true)
	if err != nil {
		return worker.ScanResult{}, err
	}
	defer resp.Body.Close()
	var res worker.ScanResult
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&res); err != nil || res.Result == "" {
		return worker.ScanResult{}, fmt.Errorf("POST %s%s: not the scan result expected: %v", c.base, path, err)
	}
	return res, nil
}
