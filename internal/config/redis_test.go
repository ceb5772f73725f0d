package config

import (
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func TestParseRedisURL(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		cluster   bool
		addr      string // RedisTarget.Addr
		user, pw  string // of both clients
		db        int
		tls       bool
		err       string // part of the error; "" = no error
	}{
		{name: "plain", url: "redis://127.0.0.1:6379/0", addr: "127.0.0.1:6379"},
		{name: "db and ACL user", url: "redis://app:s3cret@h:6380/2", addr: "h:6380", user: "app", pw: "s3cret", db: 2},
		{name: "password only", url: "redis://:pw@h:6379", addr: "h:6379", pw: "pw"},
		{name: "TLS", url: "rediss://h:6380/0", addr: "h:6380", tls: true},
		{name: "cluster", url: "redis-cluster://u:pw@h1:7000?addr=h2:7001&addr=h3:7002", cluster: true,
			addr: "h1:7000,h2:7001,h3:7002", user: "u", pw: "pw"},
		{name: "TLS cluster", url: "rediss-cluster://h1:7000", cluster: true, addr: "h1:7000", tls: true},
		{name: "wrong scheme", url: "http://h:6379", err: "invalid URL scheme"},
		{name: "bad escaping hides the password", url: "redis://u:p%zzword@h:6379/0", err: "not a valid URL"},
		{name: "bad port", url: "redis://h:port/0", err: "not a valid URL"},
		{name: "bad db", url: "redis://h:6379/x", err: "invalid database"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRedisURL(tc.url)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "zzword") {
					t.Errorf("error %q repeats the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Addr != tc.addr {
				t.Errorf("Addr %q, want %q", got.Addr, tc.addr)
			}
			switch a := got.Asynq.(type) {
			case asynq.RedisClientOpt:
				if tc.cluster || got.Single == nil || got.Cluster != nil {
					t.Fatalf("one-server target for %s: %+v", tc.url, got)
				}
				s := got.Single
				if a.Addr != s.Addr || a.Username != tc.user || s.Username != tc.user || a.Password != tc.pw ||
					s.Password != tc.pw || a.DB != tc.db || s.DB != tc.db || (a.TLSConfig != nil) != tc.tls {
					t.Errorf("asynq %+v / go-redis %+v, want user %q pw %q db %d tls %v", a, s, tc.user, tc.pw, tc.db, tc.tls)
				}
			case asynq.RedisClusterClientOpt:
				if !tc.cluster || got.Cluster == nil || got.Single != nil {
					t.Fatalf("cluster target for %s: %+v", tc.url, got)
				}
				c := got.Cluster
				if strings.Join(a.Addrs, ",") != tc.addr || a.Username != tc.user || c.Username != tc.user ||
					a.Password != tc.pw || c.Password != tc.pw || (a.TLSConfig != nil) != tc.tls {
					t.Errorf("asynq %+v / go-redis %+v, want user %q pw %q tls %v", a, c, tc.user, tc.pw, tc.tls)
				}
			default:
				t.Fatalf("asynq option %T", got.Asynq)
			}
			rdb := got.NewClient()
			defer rdb.Close()
			if _, isCluster := rdb.(*redis.ClusterClient); isCluster != tc.cluster {
				t.Errorf("NewClient returned a %T for %s", rdb, tc.url)
			}
		})
	}
}
