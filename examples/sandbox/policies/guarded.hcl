# Drift is reverted automatically, within guardrails; merged code is applied.
policy "guarded" {
  on_drift    = "apply"
  on_pending  = "apply"
  allow       = ["create", "update"]
  max_changes = 5
  protect     = ["sandbox_database.*"]
  escalate    = "pull_request"
}
