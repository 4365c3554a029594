package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"time"

	"github.com/streamer-dev/streamer/functions/actions"
)

// ReportPayload is generate_report's input.
type ReportPayload struct {
	// ReportType is sales, usage or inventory.
	ReportType string `json:"report_type"`
	// From and To bound the period, inclusive (YYYY-MM-DD).
	From string `json:"from"`
	To   string `json:"to"`
	// GroupBy is day, week or month. Default: day.
	GroupBy string `json:"group_by"`
	// DelayMS simulates the work per day of data (0–1000). Default: 20.
	DelayMS *int `json:"delay_ms"`
}

// ReportRow is one group of the report.
type ReportRow struct {
	Period  string  `json:"period"`
	Records int     `json:"records"`
	Total   float64 `json:"total"`
	Average float64 `json:"average"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
}

// Report is generate_report's result.
type Report struct {
	ReportType  string      `json:"report_type"`
	TenantID    string      `json:"tenant_id"`
	From        string      `json:"from"`
	To          string      `json:"to"`
	GroupBy     string      `json:"group_by"`
	Rows        []ReportRow `json:"rows"`
	Summary     ReportRow   `json:"summary"`
	GeneratedAt string      `json:"generated_at"`
}

// reportCheckpoint is the state saved after each day: the next day to read
// and the rows so far.
type reportCheckpoint struct {
	NextDay int         `json:"next_day"`
	Rows    []ReportRow `json:"rows"`
}

// Report limits keep the result within one WebSocket frame.
const (
	maxReportDays = 366
	maxReportRows = 120
)

var reportUnits = map[string]float64{"sales": 250, "usage": 40, "inventory": 1200}

// GenerateReport builds a report over a period from the tenant's (synthetic,
// deterministic) daily records: it reads one day at a time, aggregates the days
// into groups, reports progress after each day, checkpoints so a retry resumes
// where the last attempt stopped, and returns the rows with a summary.
func GenerateReport(ctx context.Context, req actions.Request, progress actions.Reporter) (any, error) {
	p, from, days, err := parseReport(req.Payload)
	if err != nil {
		return nil, err
	}
	cp := reportCheckpoint{}
	if len(req.Checkpoint) > 0 {
		if err := json.Unmarshal(req.Checkpoint, &cp); err != nil || cp.NextDay > days {
			return nil, actions.Permanent(fmt.Errorf("generate_report: %w", errCheckpoint))
		}
	}
	delay := time.Duration(*p.DelayMS) * time.Millisecond
	for d := cp.NextDay; d < days; d++ {
		if err := sleep(ctx, delay); err != nil {
			return nil, err
		}
		day := from.AddDate(0, 0, d)
		key := groupKey(day, p.GroupBy)
		if n := len(cp.Rows); n == 0 || cp.Rows[n-1].Period != key {
			cp.Rows = append(cp.Rows, ReportRow{Period: key, Min: math.Inf(1)})
		}
		addDay(&cp.Rows[len(cp.Rows)-1], dailyRecords(req.TenantID, p.ReportType, day))
		cp.NextDay = d + 1
		if err := progress.Checkpoint(cp); err != nil {
			return nil, err
		}
		progress.Report(float64(cp.NextDay)*100/float64(days), fmt.Sprintf("read %s", day.Format(time.DateOnly)), map[string]any{"rows": len(cp.Rows)})
	}
	return Report{
		ReportType: p.ReportType, TenantID: req.TenantID, From: p.From, To: p.To, GroupBy: p.GroupBy,
		Rows: cp.Rows, Summary: summarize(cp.Rows), GeneratedAt: time.Now().UTC().Format(time.RFC3339),
	}, nil
}

func parseReport(payload json.RawMessage) (ReportPayload, time.Time, int, error) {
	p := ReportPayload{GroupBy: "day"}
	if err := decode(payload, &p); err != nil {
		return p, time.Time{}, 0, err
	}
	if _, ok := reportUnits[p.ReportType]; !ok {
		return p, time.Time{}, 0, actions.Invalid("report_type must be sales, usage or inventory")
	}
	if p.GroupBy != "day" && p.GroupBy != "week" && p.GroupBy != "month" {
		return p, time.Time{}, 0, actions.Invalid("group_by must be day, week or month")
	}
	if p.DelayMS == nil {
		p.DelayMS = new(20)
	}
	if *p.DelayMS < 0 || *p.DelayMS > 1000 {
		return p, time.Time{}, 0, actions.Invalid("delay_ms must be between 0 and 1000")
	}
	from, err1 := time.Parse(time.DateOnly, p.From)
	to, err2 := time.Parse(time.DateOnly, p.To)
	if err1 != nil || err2 != nil {
		return p, time.Time{}, 0, actions.Invalid("from and to must be dates (YYYY-MM-DD)")
	}
	days := int(to.Sub(from).Hours()/24) + 1
	switch {
	case days < 1:
		return p, time.Time{}, 0, actions.Invalid("to must not be before from")
	case days > maxReportDays:
		return p, time.Time{}, 0, actions.Invalid("the period must not exceed %d days", maxReportDays)
	case p.GroupBy == "day" && days > maxReportRows:
		return p, time.Time{}, 0, actions.Invalid("group_by day allows at most %d days; group by week or month", maxReportRows)
	}
	return p, from, days, nil
}

func groupKey(day time.Time, groupBy string) string {
	switch groupBy {
	case "week":
		y, w := day.ISOWeek()
		return fmt.Sprintf("%d-W%02d", y, w)
	case "month":
		return day.Format("2006-01")
	}
	return day.Format(time.DateOnly)
}

// dailyRecords returns the day's record values, the same on every run.
func dailyRecords(tenant, reportType string, day time.Time) []float64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s|%s|%s", tenant, reportType, day.Format(time.DateOnly))
	seed := h.Sum64()
	n := 5 + int(seed%20)
	out := make([]float64, n)
	for i := range out {
		seed = seed*6364136223846793005 + 1442695040888963407
		out[i] = math.Round(float64(seed>>40)/float64(1<<24)*reportUnits[reportType]*100) / 100
	}
	return out
}

func addDay(row *ReportRow, values []float64) {
	for _, v := range values {
		row.Records++
		row.Total += v
		row.Min = math.Min(row.Min, v)
		row.Max = math.Max(row.Max, v)
	}
	row.Total = math.Round(row.Total*100) / 100
	row.Average = math.Round(row.Total/float64(row.Records)*100) / 100
}

func summarize(rows []ReportRow) ReportRow {
	s := ReportRow{Period: "total", Min: math.Inf(1)}
	for _, r := range rows {
		s.Records += r.Records
		s.Total += r.Total
		s.Min = math.Min(s.Min, r.Min)
		s.Max = math.Max(s.Max, r.Max)
	}
	s.Total = math.Round(s.Total*100) / 100
	if s.Records > 0 {
		s.Average = math.Round(s.Total/float64(s.Records)*100) / 100
	} else {
		s.Min = 0
	}
	return s
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
