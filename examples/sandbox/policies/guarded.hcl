# Drift is reverted automatically, within guardrails.
policy "guarded" {
  on_drift    = "apply"
  on_pending  = "pull_request"
  allow       = ["update"]
  max_changes = 5
  escalate    = "pull_request"
}
