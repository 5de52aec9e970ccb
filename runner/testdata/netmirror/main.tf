# Both providers come from the network mirror the test serves; the sandbox
# provider reads its root from SANDBOX_ROOT.
terraform {
  required_providers {
    sandbox = { source = "trueline/sandbox" }
    time    = { source = "hashicorp/time" }
  }
}

resource "sandbox_autoscaling_group" "web" {
  name     = "web"
  min_size = 1
  max_size = 3
}

resource "time_static" "created" {}
