package config

import (
	"fmt"
	"strconv"
	"time"
)

// Getenv looks up an environment variable; os.Getenv in production, a map in tests.
type Getenv func(name string) string

// Tables are the physical table names, read from the environment.
type Tables struct {
	Connections   string
	Requests      string
	Subscriptions string
}

// LoadTables reads the three table names; all are required.
func LoadTables(getenv Getenv) (Tables, error) {
	t := Tables{
		Connections:   getenv(EnvConnectionsTable),
		Requests:      getenv(EnvRequestsTable),
		Subscriptions: getenv(EnvSubscriptionsTable),
	}
	for name, v := range map[string]string{EnvConnectionsTable: t.Connections, EnvRequestsTable: t.Requests, EnvSubscriptionsTable: t.Subscriptions} {
		if v == "" {
			return t, fmt.Errorf("config: %s is not set", name)
		}
	}
	return t, nil
}

// Int reads a non-negative integer variable, def when unset.
func Int(getenv Getenv, name string, def int) (int, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("config: %s=%q is not a non-negative integer", name, v)
	}
	return n, nil
}

// Float reads a non-negative number variable, def when unset.
func Float(getenv Getenv, name string, def float64) (float64, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("config: %s=%q is not a non-negative number", name, v)
	}
	return f, nil
}

// Duration reads a positive Go duration variable ("5s"), def when unset.
func Duration(getenv Getenv, name string, def time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("config: %s=%q is not a positive duration", name, v)
	}
	return d, nil
}
