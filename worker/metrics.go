package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/internal/buildinfo"
)

// registerMetrics registers the gauges read at scrape time: build info,
// the NATS connection and each source's catalog and scan state. Reading
// state when Prometheus asks keeps them exact and needs no goroutine.
func (w *Worker) registerMetrics() error {
	bi := buildinfo.Read()
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "syncer_build_info", Help: "Always 1; the labels say which build runs.",
	}, []string{"version", "revision", "goversion"})
	build.WithLabelValues(bi.VersionOrDev(), bi.Revision, bi.GoVersion).Set(1)
	natsUp := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "syncer_nats_connected", Help: "1 while the NATS connection is up, else 0.",
	}, func() float64 {
		if w.nc != nil && w.nc.IsConnected() {
			return 1
		}
		return 0
	})
	for _, c := range []prometheus.Collector{build, natsUp, &sourceCollector{w: w}} {
		if err := w.reg.Register(c); err != nil {
			return fmt.Errorf("register worker metrics: %w", err)
		}
	}
	return nil
}

var (
	descLastSuccess = prometheus.NewDesc("syncer_source_last_scan_success_timestamp_seconds",
		"Unix time the last successful reconciliation of the source ended (0: none since start).", []string{"source"}, nil)
	descPending = prometheus.NewDesc("syncer_source_outbox_pending_changes",
		"Committed changes of the source not yet acknowledged by JetStream.", []string{"source"}, nil)
	descObjects = prometheus.NewDesc("syncer_source_objects",
		"Objects the catalog records for the source.", []string{"source"}, nil)
	descRunning = prometheus.NewDesc("syncer_source_scan_running_seconds",
		"How long the source's scan in progress has run (0: none is running).", []string{"source"}, nil)
	descOverdue = prometheus.NewDesc("syncer_source_scan_overdue",
		"1 while the source's scan in progress has run longer than one interval of its schedule (ticks are skipped), else 0.", []string{"source"}, nil)
)

// sourceCollector reports each source's catalog and scan state as of the
// scrape.
type sourceCollector struct{ w *Worker }

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLastSuccess
	ch <- descPending
	ch <- descObjects
	ch <- descRunning
	ch <- descOverdue
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	// A scrape must not hang on a busy disk: bound the catalog reads.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range c.w.sources {
		id := s.Config.ID
		var last, running, overdue float64
		if st, ok := c.w.schedStatus(id); ok {
			if !st.LastSuccess.IsZero() {
				last = float64(st.LastSuccess.UnixNano()) / 1e9
			}
			if !st.RunningSince.IsZero() {
				running = time.Since(st.RunningSince).Seconds()
			}
			if st.Overdue {
				overdue = 1
			}
		}
		ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue, last, id)
		ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, running, id)
		ch <- prometheus.MustNewConstMetric(descOverdue, prometheus.GaugeValue, overdue, id)
		n, err := c.w.counts(ctx, s)
		if err != nil {
			// The rest of the scrape is still worth having (at shutdown
			// the catalog closes before the last scrape).
			c.w.log.Debug("metrics: catalog counters unreadable", "source", id, "err", err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(n.pending), id)
		ch <- prometheus.MustNewConstMetric(descObjects, prometheus.GaugeValue, float64(n.objects), id)
	}
}
