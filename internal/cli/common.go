package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/promptq/promptq/internal/config"
	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/logging"
	"github.com/promptq/promptq/pausegate"
)

const (
	redisURLDefault   = "redis://127.0.0.1:6379/0"
	openAIURLDefault  = "https://api.openai.com/v1"
	queuesDefault     = "critical=6,default=3,low=1"
	accountEnv        = "PROMPTQ_ACCOUNT"
	apiKeyEnv         = "OPENAI_API_KEY"
	apiKeyEnvDocument = "the provider's API key; never a flag, never logged, never written to Redis"
)

// common holds the flags most commands share.
type common struct {
	redisURL  string
	account   string
	logLevel  string
	logFormat string
}

func (c *common) register(f *config.Flags, withAccount bool) {
	f.String(&c.redisURL, "redis", "REDIS_URL", redisURLDefault, "Redis URL: redis://[user:password@]host:port/db, rediss:// for TLS, redis-cluster://host:port?addr=host2:port2 for a Redis Cluster")
	if withAccount {
		f.String(&c.account, "account", accountEnv, "", "account name shared by all workers of one API key (default: a short hash of base URL + API key)")
	}
	f.String(&c.logLevel, "log-level", "LOG_LEVEL", "info", "log level: debug, info, warn, error")
	f.String(&c.logFormat, "log-format", "LOG_FORMAT", "auto", "log format: json, console, or auto (console on a terminal)")
}

func (c *common) logger(w io.Writer) zerolog.Logger { return logging.New(w, c.logLevel, c.logFormat) }

// connect parses the Redis URL (config.ParseRedisURL) and checks that Redis
// answers, so that an unreachable Redis is one clear line rather than a
// stream of retries.
func (c *common) connect(ctx context.Context) (redis.UniversalClient, asynq.RedisConnOpt, error) {
	t, err := config.ParseRedisURL(c.redisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("--redis / REDIS_URL %q: %v", config.RedactURL(c.redisURL), err)
	}
	rdb := t.NewClient()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, nil, fmt.Errorf("cannot reach Redis at %s: %v", t.Addr, err)
	}
	return rdb, t.Asynq, nil
}

// inspect connects like connect and also opens asynq's inspector; done
// closes both.
func (c *common) inspect(ctx context.Context) (redis.UniversalClient, *asynq.Inspector, func(), error) {
	rdb, aopt, err := c.connect(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	insp := asynq.NewInspector(aopt)
	return rdb, insp, func() { _ = insp.Close(); _ = rdb.Close() }, nil
}

// defaultAccount is a short hash of base URL and API key; never the key itself.
func defaultAccount(baseURL, apiKey string) string {
	sum := sha256.Sum256([]byte(baseURL + "\x00" + apiKey))
	return "acct-" + hex.EncodeToString(sum[:6])
}

// accountsFor returns the accounts an admin command acts on: the one given,
// else every account that has run a worker.
func accountsFor(ctx context.Context, rdb redis.UniversalClient, account string) ([]string, error) {
	if account != "" {
		if err := keys.ValidateAccount(account); err != nil {
			return nil, fmt.Errorf("--account: %v", err)
		}
		return []string{account}, nil
	}
	names, err := pausegate.Accounts(ctx, rdb)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		if key := os.Getenv(apiKeyEnv); key != "" {
			base := os.Getenv("OPENAI_BASE_URL")
			if base == "" {
				base = openAIURLDefault
			}
			return []string{defaultAccount(base, key)}, nil
		}
	}
	return names, nil
}
