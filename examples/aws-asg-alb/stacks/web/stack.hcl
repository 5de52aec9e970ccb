stack {
  schedule   = "0 2 * * *"
  timezone   = "Europe/Berlin"
  policy     = "guarded"
  binary     = "tofu"
  version    = "~> 1.10"

  # The autoscaler moves desired capacity itself; that is not drift.
  ignore {
    attributes = ["aws_autoscaling_group.*.desired_capacity"]
  }

  workspace "default" {
    var_files = ["prod.tfvars"]
  }
}
