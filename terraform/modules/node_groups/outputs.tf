output "node_role_arn" {
  description = "ARN of the IAM role shared by the node groups."
  value       = aws_iam_role.node.arn
}

output "node_role_name" {
  description = "Name of the node IAM role."
  value       = aws_iam_role.node.name
}

output "node_role_arns" {
  description = "Node IAM role ARN keyed by node group (cpu, gpu)."
  value = merge(
    { cpu = aws_eks_node_group.cpu.node_role_arn },
    var.gpu_enabled ? { gpu = aws_eks_node_group.gpu[0].node_role_arn } : {},
  )
}

output "node_group_names" {
  description = "Node group names keyed by pool (cpu, gpu)."
  value = merge(
    { cpu = aws_eks_node_group.cpu.node_group_name },
    var.gpu_enabled ? { gpu = aws_eks_node_group.gpu[0].node_group_name } : {},
  )
}

output "gpu_taint" {
  description = "Taint carried by GPU nodes (null when the GPU node group is disabled)."
  value       = var.gpu_enabled ? "nvidia.com/gpu=true:NoSchedule" : null
}
