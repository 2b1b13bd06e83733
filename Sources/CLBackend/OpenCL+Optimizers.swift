import Foundation

// Optimizer steps, in place, one work-item per parameter element (formulas in `SGDMomentum`, `Adam`).

extension OpenCLBackend {
    public func sgdMomentumStep(_ op: SGDMomentum, parameter: Tensor, gradient: Tensor, velocity: Tensor) throws {
        try launchElementwise("sgd_momentum_step", count: parameter.count,
                              [.tensor(parameter), .tensor(gradient), .tensor(velocity),
                               .float(op.learningRate), .float(op.momentum), .float(op.weightDecay)])
    }

    /// The bias corrections `1 - beta^t` are computed here in `Double`, once per step.
    public func adamStep(_ op: Adam, step: Int, parameter: Tensor, gradient: Tensor, firstMoment: Tensor, secondMoment: Tensor) throws {
        let correction1 = Float(1 - pow(Double(op.beta1), Double(step)))
        let correction2 = Float(1 - pow(Double(op.beta2), Double(step)))
        try launchElementwise("adam_step", count: parameter.count,
                              [.tensor(parameter), .tensor(gradient), .tensor(firstMoment), .tensor(secondMoment),
                               .float(op.learningRate), .float(op.beta1), .float(op.beta2), .float(op.epsilon), .float(op.weightDecay),
                               .float(correction1), .float(correction2)])
    }
}
