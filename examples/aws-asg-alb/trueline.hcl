# trueline serve --config trueline.hcl
listen       = "0.0.0.0:8080"
external_url = "https://trueline.internal.example"
data_dir     = "/var/lib/trueline"

binary {
  name    = "tofu"
  version = "~> 1.10"
}

repository "infra" {
  url                = "https://github.com/acme/infra.git"
  branch             = "main"
  forge              = "github"
  token_env          = "GITHUB_TOKEN"
  webhook_secret_env = "GITHUB_WEBHOOK_SECRET"
}

notify "slack" "infra" {
  webhook_url_env = "SLACK_WEBHOOK_URL"
}

report {
  schedule = "0 7 * * 1-5"
  timezone = "Europe/Berlin"
  notify   = ["slack.infra"]
}
