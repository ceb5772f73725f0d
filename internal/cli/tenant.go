package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/promptq/promptq/internal/config"
	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/quota"
)

// tenantFlags are the flags of `promptq tenant set|list|delete`.
type tenantFlags struct {
	common
	tenant string
	budget quota.TenantBudget
	asJSON bool
}

func (t *tenantFlags) register(f *config.Flags) {
	t.common.register(f, true)
	f.String(&t.tenant, "tenant", "PROMPTQ_TENANT", "", "tenant name (set, delete): 1-64 characters of A-Z a-z 0-9 _ . -")
	f.Int64(&t.budget.RPM, "rpm", "TENANT_RPM", 0, "set: the tenant's requests per minute (0 = no such budget)")
	f.Int64(&t.budget.TPM, "tpm", "TENANT_TPM", 0, "set: the tenant's tokens per minute (0 = no such budget)")
	f.Int64(&t.budget.DailyRequests, "daily-requests", "TENANT_DAILY_REQUESTS", 0, "set: the tenant's requests per day (0 = no such budget)")
	f.Int64(&t.budget.Weight, "weight", "TENANT_WEIGHT", 0, fmt.Sprintf("set: the tenant's share of short headroom against other tenants with pending work, 1-%d (0 = 1)", quota.MaxTenantWeight))
	f.Bool(&t.asJSON, "json", "PROMPTQ_JSON", false, "list: print JSON")
}

// validate checks the flags of action; the budget by quota.TenantBudget's
// Validate, named after the flag.
func (t *tenantFlags) validate(action string) error {
	if t.account == "" {
		return fmt.Errorf("tenant %s: --account / %s is required", action, accountEnv)
	}
	if err := keys.ValidateAccount(t.account); err != nil {
		return fmt.Errorf("--account / %s: %v", accountEnv, err)
	}
	if action != "list" {
		if err := keys.ValidateTenant(t.tenant); err != nil {
			return fmt.Errorf("--tenant / PROMPTQ_TENANT: %v", err)
		}
	}
	var be *quota.BudgetError
	if err := t.budget.Validate(); action == "set" && errors.As(err, &be) {
		if be.Field == "" {
			return errors.New("tenant set: give at least one of --rpm / TENANT_RPM, --tpm / TENANT_TPM, --daily-requests / TENANT_DAILY_REQUESTS, --weight / TENANT_WEIGHT")
		}
		return fmt.Errorf("%s: %s", budgetFlags[be.Field], be.Msg)
	}
	return nil
}

// runTenant is `promptq tenant set|list|delete`: per-tenant budgets inside an
// account, stored in Redis and read by every worker at each admission.
func runTenant(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var t tenantFlags
	f := config.New("tenant", "Manage per-tenant budgets inside an account (tasks name their tenant in the \"tenant\" field).\n"+
		"  promptq tenant set --account A --tenant T [--rpm N] [--tpm N] [--daily-requests N] [--weight N]\n"+
		"  promptq tenant list --account A [--json]\n"+
		"  promptq tenant delete --account A --tenant T\n"+
		"set replaces the tenant's whole budget (a value left out is no budget of that kind).\n"+
		"A tenant with a budget is held to it as well as to the account's limits. When the account's headroom is short,\n"+
		"tenants with pending work share it in proportion to their weights (default 1; requests without a tenant count as one tenant).", stdout)
	t.register(f)
	action := ""
	if len(args) > 0 && (args[0] == "set" || args[0] == "list" || args[0] == "delete") {
		action, args = args[0], args[1:]
	}
	if err := f.Parse(args); err != nil {
		return err
	}
	switch {
	case action == "":
		f.Usage()
		return errors.New("tenant: name an action: set, list or delete")
	case len(f.Args()) > 0:
		return fmt.Errorf("tenant %s: unexpected argument %q", action, f.Args()[0])
	}
	if err := t.validate(action); err != nil {
		return err
	}
	rdb, _, err := t.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	lim, err := quota.New(rdb, quota.Config{})
	if err != nil {
		return err
	}
	return t.run(ctx, lim, action, stdout)
}

// run does action on the limiter's tenant budgets.
func (t *tenantFlags) run(ctx context.Context, lim *quota.Limiter, action string, stdout io.Writer) error {
	switch action {
	case "set":
		if err := lim.SetTenantBudget(ctx, t.account, t.tenant, t.budget); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "tenant %s/%s: %s\n", t.account, t.tenant, budgetStr(t.budget))
	case "delete":
		ok, err := lim.DeleteTenant(ctx, t.account, t.tenant)
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintf(stdout, "tenant %s/%s had no budget\n", t.account, t.tenant)
			return nil
		}
		fmt.Fprintf(stdout, "tenant %s/%s deleted: it now shares the account freely\n", t.account, t.tenant)
	case "list":
		ts, err := lim.Tenants(ctx, t.account)
		if err != nil {
			return err
		}
		if t.asJSON {
			if ts == nil {
				ts = []quota.TenantState{}
			}
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(ts)
		}
		printTenants(stdout, "", ts)
	}
	return nil
}

// budgetFlags names the flag and env variable of each TenantBudget field
// (quota.BudgetError.Field).
var budgetFlags = map[string]string{
	"rpm":            "--rpm / TENANT_RPM",
	"tpm":            "--tpm / TENANT_TPM",
	"daily_requests": "--daily-requests / TENANT_DAILY_REQUESTS",
	"weight":         "--weight / TENANT_WEIGHT",
}

// budgetStr renders a budget for humans: "60 rpm, 1000 requests/day".
func budgetStr(b quota.TenantBudget) string {
	s := ""
	add := func(v int64, unit string) {
		if v > 0 {
			if s != "" {
				s += ", "
			}
			s += fmt.Sprintf("%d %s", v, unit)
		}
	}
	add(b.RPM, "rpm")
	add(b.TPM, "tpm")
	add(b.DailyRequests, "requests/day")
	if b.Weight > 1 || s == "" {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("weight %d", max(1, b.Weight))
	}
	return s
}

// printFair prints the tenants with pending work and their place in
// weighted fair sharing, one line each.
func printFair(w io.Writer, indent string, fs []quota.FairState) {
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, indent+"TENANT\tWEIGHT\tAHEAD BY\tPENDING UNTIL")
	for _, f := range fs {
		name, state := f.Tenant, ""
		if name == "" {
			name = "(none)"
		}
		if f.Yielding() {
			state = " (yielding scheduled turns)"
		}
		fmt.Fprintf(tw, "%s%s\t%d\t%v%s\t%s\n", indent, name, f.Weight, f.Lead.Round(time.Millisecond), state, f.PendingUntil.Format(time.RFC3339Nano))
	}
	tw.Flush()
}

// printTenants prints one line per tenant, each line starting with indent.
func printTenants(w io.Writer, indent string, ts []quota.TenantState) {
	if len(ts) == 0 {
		fmt.Fprintln(w, indent+"(no tenant budgets: every tenant shares the account freely)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, indent+"TENANT\tBUDGET\tREQUESTS AVAILABLE\tTOKENS AVAILABLE\tREQUESTS TODAY")
	for _, t := range ts {
		req, tok := "-", "-"
		if t.Budget.RPM > 0 {
			req = fmt.Sprintf("%.0f", t.Requests)
		}
		if t.Budget.TPM > 0 {
			tok = fmt.Sprintf("%.0f", t.Tokens)
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%d\n", indent, t.Tenant, budgetStr(t.Budget), req, tok, t.DailyRequests)
	}
	tw.Flush()
}
