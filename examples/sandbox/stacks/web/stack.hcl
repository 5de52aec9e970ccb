stack {
  schedule = "@every 1m"
  policy   = "guarded"

  # The autoscaler moves desired_capacity itself; that is not drift.
  ignore {
    attributes = ["sandbox_autoscaling_group.*.desired_capacity"]
  }
}
