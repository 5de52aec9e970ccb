package stacks

import "github.com/hashicorp/go-version"

func versionConstraint(s string) (version.Constraints, error) { return version.NewConstraint(s) }
