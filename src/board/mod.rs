//! The board: GPIO, PWM, I2C and sensors behind one trait (issue 5).
