package config

import (
	"errors"
	"net/url"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// RedisTarget is what a Redis URL names, as options for promptq's own
// go-redis client and for asynq's, which must log in as the same user.
type RedisTarget struct {
	// Single holds the options of one server (redis://, rediss://); nil
	// for a cluster.
	Single *redis.Options
	// Cluster holds the options of a Redis Cluster (redis-cluster://,
	// rediss-cluster://); nil for one server.
	Cluster *redis.ClusterOptions
	// Asynq is asynq's connection to the same server or cluster.
	Asynq asynq.RedisConnOpt
	// Addr names where Redis is, for messages: host:port, or the cluster's
	// seed nodes joined by commas. It never holds a password.
	Addr string
}

// ParseRedisURL parses a Redis URL.
//
// redis:// and rediss:// (TLS) name one server:
// redis://[user:password@]host:port/db. redis-cluster:// and
// rediss-cluster:// name a Redis Cluster: the first host plus more seed
// nodes as addr parameters (redis-cluster://user:pw@h1:7000?addr=h2:7001).
// Every promptq key of an account shares one hash tag, so its scripts run
// on one slot; asynq hash-tags its queue keys the same way.
//
// An error never repeats the URL, which may hold a password.
func ParseRedisURL(raw string) (RedisTarget, error) {
	if rest, ok := strings.CutPrefix(raw, "redis-cluster://"); ok {
		return parseCluster("redis://" + rest)
	}
	if rest, ok := strings.CutPrefix(raw, "rediss-cluster://"); ok {
		return parseCluster("rediss://" + rest)
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return RedisTarget{}, redisURLError(err)
	}
	// asynq's own URL parser drops an ACL username: build its options from
	// go-redis's parse instead, so both clients log in as one user.
	return RedisTarget{
		Single: opt,
		Asynq: asynq.RedisClientOpt{
			Network: opt.Network, Addr: opt.Addr, Username: opt.Username, Password: opt.Password,
			DB: opt.DB, TLSConfig: opt.TLSConfig,
		},
		Addr: opt.Addr,
	}, nil
}

func parseCluster(u string) (RedisTarget, error) {
	opt, err := redis.ParseClusterURL(u)
	if err != nil {
		return RedisTarget{}, redisURLError(err)
	}
	return RedisTarget{
		Cluster: opt,
		Asynq:   asynq.RedisClusterClientOpt{Addrs: opt.Addrs, Username: opt.Username, Password: opt.Password, TLSConfig: opt.TLSConfig},
		Addr:    strings.Join(opt.Addrs, ","),
	}, nil
}

// redisURLError says what is wrong without repeating the URL: url.Parse
// errors quote the raw URL (or a piece of it), password and all.
func redisURLError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return errors.New("not a valid URL (check the escaping of the password and the port)")
	}
	return err
}

// NewClient returns a go-redis client for t: a cluster client for a
// cluster, else a client of one server.
func (t RedisTarget) NewClient() redis.UniversalClient {
	if t.Cluster != nil {
		return redis.NewClusterClient(t.Cluster)
	}
	return redis.NewClient(t.Single)
}
