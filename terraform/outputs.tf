output "region" {
  description = "AWS region of the cluster."
  value       = var.region
}

output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = module.cluster.cluster_name
}

output "cluster_arn" {
  description = "ARN of the EKS cluster."
  value       = module.cluster.cluster_arn
}

output "cluster_version" {
  description = "Kubernetes version of the control plane."
  value       = module.cluster.cluster_version
}

output "cluster_endpoint" {
  description = "HTTPS endpoint of the Kubernetes API server."
  value       = module.cluster.cluster_endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64 CA certificate of the API server (public data, used in kubeconfig)."
  value       = module.cluster.cluster_certificate_authority_data
}

output "update_kubeconfig_command" {
  description = "Command that writes a kubeconfig entry for this cluster."
  value       = "aws eks update-kubeconfig --region ${var.region} --name ${module.cluster.cluster_name}"
}

output "oidc_issuer_url" {
  description = "OIDC issuer URL of the cluster (for IRSA trust policies)."
  value       = module.cluster.oidc_issuer_url
}

output "oidc_provider_arn" {
  description = "ARN of the IAM OIDC provider (null when enable_irsa = false)."
  value       = module.cluster.oidc_provider_arn
}

output "cluster_role_arn" {
  description = "ARN of the IAM role assumed by the EKS control plane."
  value       = module.cluster.cluster_role_arn
}

output "node_role_arn" {
  description = "ARN of the IAM role shared by the managed node groups."
  value       = module.node_groups.node_role_arn
}

output "node_role_arns" {
  description = "Node IAM role ARN per node group (cpu, and gpu when enabled)."
  value       = module.node_groups.node_role_arns
}

output "node_group_names" {
  description = "EKS managed node group names keyed by pool (cpu, gpu)."
  value       = module.node_groups.node_group_names
}

output "vpc_id" {
  description = "ID of the VPC."
  value       = module.network.vpc_id
}

output "public_subnet_ids" {
  description = "IDs of the public subnets (load balancers, NAT gateways)."
  value       = module.network.public_subnet_ids
}

output "private_subnet_ids" {
  description = "IDs of the private subnets (nodes, control plane ENIs, internal load balancers)."
  value       = module.network.private_subnet_ids
}

output "nat_gateway_ids" {
  description = "IDs of the NAT gateways."
  value       = module.network.nat_gateway_ids
}

output "ebs_csi_role_arn" {
  description = "ARN of the IRSA role of the EBS CSI controller (null when disabled)."
  value       = try(aws_iam_role.ebs_csi[0].arn, null)
}
