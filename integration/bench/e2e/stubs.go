package e2e

import "errors"

func RunBridge(role string, args []string) error            { return errors.New("not yet") }
func (e *Env) BaselineOut(run, n, warm int) (Result, error) { return Result{}, errors.New("not yet") }
func (e *Env) BaselineIn(run, n, warm int) (Result, error)  { return Result{}, errors.New("not yet") }
func (e *Env) Inbound(run, n, warm int) (Result, error)     { return Result{}, errors.New("not yet") }
