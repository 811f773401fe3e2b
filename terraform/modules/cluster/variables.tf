variable "cluster_name" {
  description = "Name of the EKS cluster."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9-]{0,37}[A-Za-z0-9]$", var.cluster_name))
    error_message = "cluster_name must be 2-39 characters of letters, digits and hyphens."
  }
}

variable "kubernetes_version" {
  description = "EKS Kubernetes minor version, e.g. 1.34."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets (at least two AZs) for the control plane's cross-account ENIs."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "EKS needs subnets in at least two availability zones."
  }
}

variable "endpoint_public_access" {
  description = "Whether the API endpoint is reachable from the internet (private access is always on)."
  type        = bool
  default     = true
}

variable "public_access_cidrs" {
  description = "CIDRs allowed to use the public API endpoint."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "enabled_cluster_log_types" {
  description = "Control plane log types to enable."
  type        = list(string)
  default     = ["api", "audit", "authenticator"]
}

variable "log_retention_days" {
  description = "Retention of the control plane log group, in days."
  type        = number
  default     = 30
}

variable "enable_irsa" {
  description = "Create an IAM OIDC provider for IAM roles for service accounts."
  type        = bool
  default     = true
}

variable "oidc_thumbprints" {
  description = "Root CA thumbprints stored on the IAM OIDC provider."
  type        = list(string)
  default     = ["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"]
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
