variable "cluster_name" {
  description = "Name of the EKS cluster the node groups join."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes version of the nodes (normally the control plane version)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets the nodes are launched in."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 1
    error_message = "At least one subnet is required."
  }
}

variable "cpu" {
  description = "Settings of the CPU node group that runs cajald and the Kubeflow components."
  type = object({
    instance_types = list(string)
    ami_type       = optional(string, "AL2023_x86_64_STANDARD")
    capacity_type  = optional(string, "ON_DEMAND")
    disk_size      = optional(number, 50)
    min_size       = number
    desired_size   = number
    max_size       = number
  })

  validation {
    condition     = var.cpu.min_size <= var.cpu.desired_size && var.cpu.desired_size <= var.cpu.max_size && var.cpu.max_size >= 1
    error_message = "cpu node group sizes must satisfy min_size <= desired_size <= max_size and max_size >= 1."
  }
}

variable "gpu_enabled" {
  description = "Create the GPU node group."
  type        = bool
  default     = false
}

variable "gpu" {
  description = "Settings of the optional GPU node group (tainted nvidia.com/gpu=true:NoSchedule, labelled cajal.dev/node-pool=gpu)."
  type = object({
    instance_types = list(string)
    ami_type       = optional(string, "AL2023_x86_64_NVIDIA")
    capacity_type  = optional(string, "ON_DEMAND")
    disk_size      = optional(number, 100)
    min_size       = number
    desired_size   = number
    max_size       = number
  })
  default = {
    instance_types = ["g5.xlarge"]
    min_size       = 0
    desired_size   = 1
    max_size       = 2
  }

  validation {
    condition     = var.gpu.min_size <= var.gpu.desired_size && var.gpu.desired_size <= var.gpu.max_size && var.gpu.max_size >= 1
    error_message = "gpu node group sizes must satisfy min_size <= desired_size <= max_size and max_size >= 1."
  }
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
