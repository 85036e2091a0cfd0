package argocd

import (
	"context"
	"embed"
	"fmt"
	"strings"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// scripts holds the health scripts, so that HealthScript finds them
// whatever the working directory. Their tests and fixtures stay out.
//
//go:embed resource_customizations/*/*/health.lua
var scripts embed.FS

// evalTimeout bounds one run of a script. Argo CD allows one second; this
// allows more, because a busy test machine can stall any single run that
// long, and a script of a few table lookups needs microseconds either way.
const evalTimeout = 10 * time.Second

// HealthScript returns the health script of kind, read from
// resource_customizations. It fails when no group, or more than one, has
// a script for that kind.
func HealthScript(kind string) (string, error) {
	checks, err := HealthChecks(scripts)
	if err != nil {
		return "", err
	}
	var found []HealthCheck
	for _, c := range checks {
		if c.Kind == kind {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("failed to find the health script of %s: %d in %s",
			kind, len(found), CustomizationsDir)
	}
	return found[0].Script, nil
}

// Health runs a health script the way Argo CD runs one kept in argocd-cm,
// with obj, a live object decoded from JSON (as unstructured gives it), as
// the global obj. It returns the status and message of the table the
// script returns. err is what Argo CD would show instead of a health: the
// script failed, ran out of time, or returned something other than a table
// of two strings. Health does not check that status is one Argo CD knows.
func Health(script string, obj map[string]any) (status, message string, err error) {
	return runHealth(script, obj, nil)
}

// runHealth is Health with a look inside: inspect, when not nil, sees the
// Lua state after the script ran.
//
// Like Argo CD, it runs the script in a fresh state that has only the
// package, base and table libraries, under a deadline.
func runHealth(script string, obj map[string]any,
	inspect func(*lua.LState)) (status, message string, err error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		open := lua.P{Fn: l.NewFunction(lib.open), Protect: true}
		if err := l.CallByParam(open, lua.LString(lib.name)); err != nil {
			return "", "", fmt.Errorf("failed to open %s: %w", lib.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), evalTimeout)
	defer cancel()
	l.SetContext(ctx)

	// Run the script with the object.
	proto, err := compile(script)
	if err != nil {
		return "", "", err
	}
	l.SetGlobal("obj", toLua(l, obj))
	l.Push(l.NewFunctionFromProto(proto))
	if err := l.PCall(0, lua.MultRet, nil); err != nil {
		return "", "", err
	}
	if inspect != nil {
		inspect(l)
	}

	// Read what it returned.
	hs, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("the script returned %s, not a table", l.Get(-1).Type())
	}
	s, ok := hs.RawGetString("status").(lua.LString)
	if !ok {
		return "", "", fmt.Errorf("status is %s, not a string",
			hs.RawGetString("status").Type())
	}
	m, ok := hs.RawGetString("message").(lua.LString)
	if !ok {
		return "", "", fmt.Errorf("message is %s, not a string",
			hs.RawGetString("message").Type())
	}
	return string(s), string(m), nil
}

// compiled holds each script compiled once: DoString would compile it
// again on every run, to the same code.
var compiled sync.Map

func compile(script string) (*lua.FunctionProto, error) {
	if proto, ok := compiled.Load(script); ok {
		return proto.(*lua.FunctionProto), nil
	}
	chunk, err := parse.Parse(strings.NewReader(script), healthScript)
	if err != nil {
		return nil, err
	}
	proto, err := lua.Compile(chunk, healthScript)
	if err != nil {
		return nil, err
	}
	compiled.Store(script, proto)
	return proto, nil
}

// toLua converts an object decoded from JSON as Argo CD does: maps become
// tables keyed by string, lists become tables indexed from 1, and numbers,
// whole (int64) or not (float64), become Lua numbers.
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for key, item := range v {
			t.RawSetString(key, toLua(l, item))
		}
		return t
	}
	return lua.LNil
}
